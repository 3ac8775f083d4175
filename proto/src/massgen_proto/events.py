"""Run events: everything observable about a run, in order, on the run's event subject.

The CLI display, the log folder, the HTTP API and the coordination table all read
these; none has a back channel. Agent-facing names are labels (``agent2``); ``agent``
fields carry the config id for people reading logs.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .messages import CodeCheck

__all__ = [
    "ANSWER_TOOL",
    "AgentError",
    "ChunkChannel",
    "STREAMED_KINDS",
    "TOOL_KINDS",
    "AgentExcluded",
    "AgentFailed",
    "AgentInfo",
    "AnswerAccepted",
    "BudgetReached",
    "Chunk",
    "Consensus",
    "DeadlineReached",
    "FinalAnswer",
    "PresentationStarted",
    "Restart",
    "RunCreated",
    "RunEvent",
    "RunEventAdapter",
    "entitled",
    "trusted_event",
    "RunFinished",
    "RunStatus",
    "TERMINAL_STATUSES",
    "TokenUsage",
    "ToolDenied",
    "TurnStarted",
    "VoteAccepted",
    "VOTE_TOOL",
    "VoteDiscarded",
    "WORKFLOW_TOOLS",
    "WorkflowRejected",
]

RunStatus = Literal["running", "presenting", "completed", "timed_out", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "timed_out", "failed", "cancelled"})

ANSWER_TOOL = "new_answer"
"""The workflow tool that submits an answer (PROTOCOL.md); its ``content`` streams on the
``answer`` chunk channel."""
VOTE_TOOL = "vote"
"""The workflow tool that casts a vote; a complete one is a ``vote`` chunk."""
WORKFLOW_TOOLS: frozenset[str] = frozenset({ANSWER_TOOL, VOTE_TOOL})


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    ts: float = Field(default_factory=time.time)
    """Epoch seconds when the event was made."""


class _AgentEvent(_Event):
    agent: str
    """Config id of the agent."""
    label: str
    """The agent's anonymous label, e.g. ``agent2``."""


class AgentInfo(BaseModel):
    """One agent as announced when the run is created."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    label: str
    provider: str
    model: str


class RunCreated(_Event):
    kind: Literal["run_created"] = "run_created"
    question: str
    agents: list[AgentInfo]
    deadline: float
    """Epoch seconds at which coordination stops."""


class TurnStarted(_AgentEvent):
    kind: Literal["turn_started"] = "turn_started"
    turn_id: str
    phase: Literal["coordinate", "present"]
    number: int
    delivery: int = 1
    """Above 1 when the turn was redelivered to another worker."""
    stream_tag: str = ""
    """What the turn's streamed events must carry as ``tag`` (``ids.stream_tag``)."""


ChunkChannel = Literal[
    "content", "reasoning", "tool_call", "tool_result", "answer", "vote", "tool_args"
]


class Chunk(_AgentEvent):
    """Streamed model output, published by the worker as it is generated.

    ``text`` by channel:

    - ``content`` / ``reasoning``: model text as generated (in small batches);
    - ``answer``: the answer text of a ``new_answer`` call, decoded from the call's
      arguments as they are generated (the agent "providing an answer");
    - ``vote``: a ``vote`` call as soon as it is complete, JSON
      ``{"target": label, "reason": text}``;
    - ``tool_args``: arguments of any other tool call as generated, JSON
      ``{"id": call id, "name": tool name, "delta": raw argument text}``;
    - ``tool_call``: a complete tool call, JSON ``{"id", "name", "arguments"}``
      (workflow calls too: the accepted / rejected events that follow say what came of them);
    - ``tool_result``: what a tool call returned, JSON ``{"id", "name", "content"}``.

    Readers that do not know a channel should skip the chunk (channels may be added).
    """

    kind: Literal["chunk"] = "chunk"
    turn_id: str
    channel: ChunkChannel
    text: str
    tag: str = ""
    """The turn's ``stream_tag``: proof the publisher was handed the turn."""


class TokenUsage(_AgentEvent):
    kind: Literal["token_usage"] = "token_usage"
    turn_id: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = 0.0
    """Price of these tokens from litellm's price map (0 where it has none)."""
    tag: str = ""
    """The turn's ``stream_tag`` (see ``Chunk.tag``)."""


class AnswerAccepted(_AgentEvent):
    kind: Literal["answer_accepted"] = "answer_accepted"
    version: str
    """Public answer name, e.g. ``agent2.3``."""
    content: str
    check: CodeCheck | None = None
    """The answer's code run against the task's own examples, when it was."""


class WorkflowRejected(_AgentEvent):
    kind: Literal["workflow_rejected"] = "workflow_rejected"
    turn_id: str
    tool: str | None
    """``new_answer``, ``vote``, another name, or None when no workflow call was made."""
    error: str


class VoteAccepted(_AgentEvent):
    kind: Literal["vote_accepted"] = "vote_accepted"
    target: str
    """Label voted for."""
    target_agent: str
    reason: str
    same_answer: bool = False
    """True when the agent submitted the target's answer again (identical, or too
    similar under the novelty rule): the duplicate counts as this vote."""


class VoteDiscarded(_AgentEvent):
    kind: Literal["vote_discarded"] = "vote_discarded"
    target: str
    reason: str
    """Why it no longer counts (the answer set changed while the agent worked)."""


class Restart(_AgentEvent):
    kind: Literal["restart"] = "restart"
    reason: str
    interrupted: bool = False
    """True when a running turn was cancelled for it (``restart_policy: interrupt``)."""


class AgentError(_AgentEvent):
    kind: Literal["agent_error"] = "agent_error"
    turn_id: str
    error: str
    failures: int
    """Consecutive failed turns so far."""
    retry_in: float | None
    """Seconds until the retry, or None when the agent gives up."""


class AgentFailed(_AgentEvent):
    kind: Literal["agent_failed"] = "agent_failed"
    error: str


class AgentExcluded(_AgentEvent):
    """The others had all voted; this agent's provider kept failing, so the run went on
    without it (it does not count for this consensus; see the coordination rules)."""

    kind: Literal["agent_excluded"] = "agent_excluded"
    error: str


class Consensus(_Event):
    kind: Literal["consensus"] = "consensus"
    winner: str
    winner_label: str
    votes: dict[str, int]
    """Votes received per label."""


class DeadlineReached(_Event):
    kind: Literal["deadline_reached"] = "deadline_reached"
    answers: int


class BudgetReached(_Event):
    """The run used up its budget (``orchestrator.max_total_tokens`` / ``max_cost_usd``):
    no turn starts any more; the best answer so far, if any, is the final answer."""

    kind: Literal["budget_reached"] = "budget_reached"
    limit: str
    """Which limit, e.g. ``max_total_tokens 20000``."""
    tokens: int
    cost_usd: float
    answers: int


class PresentationStarted(_AgentEvent):
    kind: Literal["presentation_started"] = "presentation_started"


class FinalAnswer(_AgentEvent):
    kind: Literal["final_answer"] = "final_answer"
    content: str
    fallback: bool = False
    """True when the presentation failed or was empty and the stored answer was used."""


class RunFinished(_Event):
    kind: Literal["run_finished"] = "run_finished"
    status: Literal["completed", "timed_out", "failed", "cancelled"]
    message: str = ""
    winner: str | None = None
    tokens: int = 0
    """Tokens the run's turns reported using, all agents together."""
    cost_usd: float = 0.0
    """Their price in US dollars (litellm's price map)."""


class ToolDenied(_AgentEvent):
    """A tool call was refused by a path permission (audit; nothing touched the disk)."""

    kind: Literal["tool_denied"] = "tool_denied"
    turn_id: str
    tool: str
    """Tool name as offered, e.g. ``mcp__filesystem__write_file``."""
    path: str
    """The path argument as the agent gave it."""
    resolved: str
    """Where it resolved to (symlinks, ``..``, ``~`` and the workspace applied)."""
    rule: str
    """Which rule refused it, e.g. ``outside_roots``, ``context_read_only``."""
    phase: Literal["coordinate", "present"]


RunEvent = Annotated[
    RunCreated
    | TurnStarted
    | Chunk
    | TokenUsage
    | AnswerAccepted
    | WorkflowRejected
    | VoteAccepted
    | VoteDiscarded
    | Restart
    | AgentError
    | AgentFailed
    | AgentExcluded
    | Consensus
    | DeadlineReached
    | BudgetReached
    | PresentationStarted
    | FinalAnswer
    | RunFinished
    | ToolDenied,
    Field(discriminator="kind"),
]
RunEventAdapter: TypeAdapter[RunEvent] = TypeAdapter(RunEvent)

STREAMED_KINDS = frozenset({"chunk", "token_usage"})
"""What workers publish (subject source ``stream``)."""
TOOL_KINDS = frozenset({"tool_denied"})
"""What the gateway publishes (subject source ``tools``)."""


def entitled(source: str | None, kind: str) -> bool:
    """May the publisher role ``source`` (see ``subjects.event_source``) publish ``kind``?

    Answers, votes, winners, final answers and run status come only from the
    orchestrator: a forged ``final_answer`` on a worker's subject is not an event.
    """
    if source == "stream":
        return kind in STREAMED_KINDS
    if source == "tools":
        return kind in TOOL_KINDS
    if source == "run":
        return kind not in STREAMED_KINDS and kind not in TOOL_KINDS
    return False


def trusted_event(subject: str, data: bytes) -> RunEvent | None:
    """The event in ``data`` if its subject's publisher is entitled to it, else None
    (also for data that is no event)."""
    from .subjects import event_source

    try:
        event = RunEventAdapter.validate_json(data)
    except ValueError:
        return None
    return event if entitled(event_source(subject), event.kind) else None

"""Messages exchanged between services (not run events: see events.py).

Every message has a ``kind`` tag; each family is one discriminated union with one
TypeAdapter, which is also what proto/schemas/ is generated from.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "BackendSpec",
    "CancelRun",
    "CancelTurn",
    "ChatMessage",
    "CodeCheck",
    "CreateRun",
    "ErrorReply",
    "ModelRetrying",
    "OrchestratorReply",
    "OrchestratorReplyAdapter",
    "PresentationFinished",
    "RunAccepted",
    "TurnFailed",
    "TurnRequest",
    "TurnStarted",
    "TurnUsage",
    "Usage",
    "Verdict",
    "WorkerReport",
    "WorkerReportAdapter",
    "WorkflowCall",
    "WorkflowSubmission",
]

Phase = Literal["coordinate", "present"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChatMessage(_Message):
    """One message of a model conversation."""

    role: Literal["system", "user", "assistant"]
    content: str


class BackendSpec(_Message):
    """What a worker needs to call an agent's model."""

    type: str
    model: str
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    """Provider parameters passed through from the config."""


class TurnRequest(_Message):
    """Work for one agent turn, published on its provider's turn subject."""

    kind: Literal["turn_request"] = "turn_request"
    run_id: str
    turn_id: str
    agent_id: str
    label: str
    phase: Phase
    number: int
    """1-based count of this agent's turns in the run."""
    answer_set_version: int
    """How many answers had been accepted when this turn was built."""
    backend: BackendSpec
    messages: list[ChatMessage]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    """Workflow tools offered, in OpenAI function-tool JSON."""
    deadline: float
    """Epoch seconds after which the turn has failed (turn timeout)."""
    max_attempts: int = 3
    uses_tools: bool = True
    """False when the agent has no tools at all (no MCP servers, no workspace, no context
    paths): the worker then does not ask the gateway for any."""
    max_tool_calls: int = Field(default=100, ge=0)
    """Non-workflow tool calls the agent may make in this turn (all attempts together)."""
    token: str = Field(default="", repr=False)
    """The turn's capability: reports and gateway calls for this turn must carry it."""
    orchestrator: str = ""
    """The replica that published the turn and holds the run's state: reports go to it
    first (``subjects.report_subject``), to any replica when it does not answer."""
    examples: str = ""
    """The task's own examples as doctest source (``code_text.task_examples``): the
    worker has the gateway run the code of the answer (or presentation) it submits
    against them and sends the result with it. Empty: nothing to check."""


class Usage(_Message):
    """What a turn's model calls have used so far (cumulative within the turn)."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    """From litellm's price map; 0 for models it has no price for (local ones)."""


class CodeCheck(_Message):
    """An answer's code run against the task's own examples (``code_text.task_examples``)
    in the gateway's sandbox: evidence for voters and for choosing the winner."""

    passed: int = Field(ge=0)
    total: int = Field(ge=0)
    failure: str = Field(default="", max_length=600)
    """The first example that failed and how (or why the code did not run), cut."""

    def summary(self) -> str:
        """How many of the examples pass, and the first failure (for a prompt)."""
        text = f"{self.passed} of {self.total} pass"
        return f"{text}; first failure: {self.failure}" if self.failure else text


class WorkflowCall(_Message):
    """One workflow tool call as the model wrote it."""

    name: str
    arguments: dict[str, Any] | str
    """Parsed JSON arguments, or the raw text when they were not valid JSON."""
    check: CodeCheck | None = None
    """A ``new_answer``'s code checked against the task's examples, when the turn asked
    for it (``TurnRequest.examples``) and the answer has code."""


class TurnStarted(_Message):
    """A worker took a turn (first delivery or redelivery)."""

    kind: Literal["turn_started"] = "turn_started"
    run_id: str
    turn_id: str
    token: str = Field(default="", repr=False)
    """The capability that came with the turn request."""
    worker: str
    delivery: int = 1


class WorkflowSubmission(_Message):
    """The workflow calls of one model response, for the orchestrator to judge."""

    kind: Literal["workflow_submission"] = "workflow_submission"
    run_id: str
    turn_id: str
    token: str = Field(default="", repr=False)
    """The capability that came with the turn request."""
    attempt: int
    calls: list[WorkflowCall]
    usage: Usage | None = None
    """The turn's usage so far; the orchestrator adds it to the run's budget."""


class TurnFailed(_Message):
    """A turn could not be completed (provider error, attempts exhausted, timeout)."""

    kind: Literal["turn_failed"] = "turn_failed"
    run_id: str
    turn_id: str
    token: str = Field(default="", repr=False)
    """The capability that came with the turn request."""
    error: str
    usage: Usage | None = None
    """The turn's usage so far; the orchestrator adds it to the run's budget."""


class PresentationFinished(_Message):
    """The winner's final presentation text."""

    kind: Literal["presentation_finished"] = "presentation_finished"
    run_id: str
    turn_id: str
    token: str = Field(default="", repr=False)
    """The capability that came with the turn request."""
    content: str
    usage: Usage | None = None
    """The turn's usage so far; the orchestrator adds it to the run's budget."""
    check: CodeCheck | None = None
    """The presentation's code checked against the task's examples (as answers are)."""


class ModelRetrying(_Message):
    """The agent's model call failed with a retryable provider error; the worker retries.

    Lets the orchestrator stop waiting for an agent whose provider keeps failing
    (see the coordination rules), before the turn itself has failed.
    """

    kind: Literal["model_retrying"] = "model_retrying"
    run_id: str
    turn_id: str
    token: str = Field(default="", repr=False)
    """The capability that came with the turn request."""
    error: str
    status: int | None = None
    """The provider's HTTP status, when there was one."""
    rate_limited: bool = False
    """True for HTTP 429: a transient limit, not a failing provider."""


class TurnUsage(_Message):
    """A turn's final usage, sent after the turn when it grew since the turn's last
    report (a response's token count arrives after the response was acted on)."""

    kind: Literal["turn_usage"] = "turn_usage"
    run_id: str
    turn_id: str
    token: str = Field(default="", repr=False)
    """The capability that came with the turn request."""
    usage: Usage


WorkerReport = Annotated[
    TurnStarted
    | WorkflowSubmission
    | TurnFailed
    | PresentationFinished
    | ModelRetrying
    | TurnUsage,
    Field(discriminator="kind"),
]
WorkerReportAdapter: TypeAdapter[WorkerReport] = TypeAdapter(WorkerReport)


class Verdict(_Message):
    """The orchestrator's answer to a worker report.

    ``accepted``: go on (turn started) or the turn is done (workflow call accepted).
    ``rejected``: tell the model ``message`` and let it try again within the turn.
    ``stale``: the turn is no longer wanted (superseded, cancelled, run over); stop it.
    """

    kind: Literal["verdict"] = "verdict"
    status: Literal["accepted", "rejected", "stale"]
    message: str = ""


class CreateRun(_Message):
    """Ask the orchestrator to start a run."""

    kind: Literal["create_run"] = "create_run"
    run_id: str | None = None
    question: str = Field(min_length=1)
    config: dict[str, Any]
    """The run config as a mapping (validated by the orchestrator)."""
    history: list[ChatMessage] = Field(default_factory=list)
    """Earlier turns of a multi-turn session."""
    previous_run_id: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"
    )
    """The session's previous turn: the run whose winner's final workspace this run's
    agents start from (a writable copy in each workspace, the original read-only). The
    caller vouches that the run is the same user's (the API checks the tenant); the
    gateway only looks in its own ``<workspace_root>/<run_id>/final_workspace``."""


class CancelRun(_Message):
    """Ask the orchestrator to cancel a run, keeping what was already accepted."""

    kind: Literal["cancel_run"] = "cancel_run"
    run_id: str
    reason: str = "cancelled by user"


class RunAccepted(_Message):
    """A create or cancel request was taken."""

    kind: Literal["run_accepted"] = "run_accepted"
    run_id: str


class ErrorReply(_Message):
    """A request was refused; ``error`` says why in words a user can act on."""

    kind: Literal["error"] = "error"
    error: str
    code: Literal["bad_request", "not_found", "forbidden", "internal"] = "bad_request"
    """``forbidden``: the caller holds no capability for what it asked (e.g. the
    gateway refused a tool request without its turn's token)."""


OrchestratorReply = Annotated[Verdict | RunAccepted | ErrorReply, Field(discriminator="kind")]
OrchestratorReplyAdapter: TypeAdapter[OrchestratorReply] = TypeAdapter(OrchestratorReply)


class CancelTurn(_Message):
    """Control message to workers: stop a running turn now."""

    kind: Literal["cancel_turn"] = "cancel_turn"
    run_id: str
    turn_id: str
    reason: str

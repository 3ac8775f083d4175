"""The state of one run, as the coordination state machine keeps it.

A ``RunState`` is plain data: it round-trips through ``model_dump_json()`` /
``model_validate_json()`` because the adapter writes it to the runs KV bucket after
every transition. Nested records (answers, votes, turns) are frozen and replaced,
never edited, so a transition only has to copy the run and its agent list.
"""

from __future__ import annotations

from typing import Literal

from massgen_proto.config import AgentConfig, RunConfig
from massgen_proto.events import TERMINAL_STATUSES, RunStatus
from massgen_proto.ids import label_index
from massgen_proto.messages import ChatMessage, CodeCheck, Usage, Verdict
from pydantic import BaseModel, ConfigDict, Field

from .commands import Command

__all__ = [
    "TROUBLE_GRACE_SECONDS",
    "AgentState",
    "Answer",
    "RunState",
    "SubmissionRecord",
    "Turn",
    "Vote",
    "next_wakeup",
]


TROUBLE_GRACE_SECONDS = 1.0
"""How long the agents who have all voted wait for troubled agents before presenting."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(_Frozen):
    """One accepted answer."""

    label: str
    """Label of the agent that wrote it."""
    agent_id: str
    """Config id of that agent."""
    version: str
    """Public name, e.g. ``agent2.3``."""
    number: int
    """1-based count of this agent's answers."""
    content: str
    check: CodeCheck | None = None
    """Its code run against the task's own examples (by its worker, through the
    gateway's sandbox), when the task gives examples and the answer has code."""


class Vote(_Frozen):
    """An accepted vote."""

    target: str
    """Label voted for."""
    reason: str
    answer_set_version: int
    """The answer set the vote was cast against."""


class Turn(_Frozen):
    """An agent's current turn (published, maybe queued, maybe running)."""

    turn_id: str
    number: int
    phase: Literal["coordinate", "present"]
    answer_set_version: int
    """How many answers existed when the turn was built."""
    tools: tuple[str, ...] = ()
    """Names of the workflow tools offered in this turn."""
    published_at: float
    deadline: float
    started: bool = False
    """True once a worker reported TurnStarted."""
    worker: str | None = None
    delivery: int = 0
    """How many times a worker took the turn (0 while it is still queued)."""


class SubmissionRecord(_Frozen):
    """The verdict given to an agent's last workflow submission (for redeliveries)."""

    turn_id: str
    attempt: int
    verdict: Verdict


class AgentState(BaseModel):
    """Where one agent stands in the run."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str
    label: str
    turns: int = 0
    """Turns published so far (the next turn gets ``turns + 1``)."""
    answers: int = 0
    """Answers accepted so far."""
    turn: Turn | None = None
    vote: Vote | None = None
    failures: int = 0
    """Consecutive failed turns (reset by any accepted workflow call)."""
    last_error: str | None = None
    retry_at: float | None = None
    """Epoch seconds when the retry turn after a failure is due."""
    failed: bool = False
    """True once the agent hit ``max_agent_failures``: it no longer takes part."""
    restart_pending: bool = False
    """The answer set changed while this agent's turn was running (``finish`` policy)."""
    last_submission: SubmissionRecord | None = None
    waiting: bool = False
    """Answered, and waiting for the others' first answers before its next turn (one
    batch of restarts instead of one per arriving answer)."""
    trouble: str | None = None
    """The provider error the agent's model keeps hitting (a failed turn, or a retry
    that is not a rate limit); cleared by its next accepted workflow call."""
    tokens: int = 0
    """Prompt and completion tokens the agent's turns reported using."""
    cost_usd: float = 0.0
    """Dollars the agent's turns reported using."""


class RunState(BaseModel):
    """One run: its config, answers, agents and outcome."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    question: str
    history: list[ChatMessage] = Field(default_factory=list)
    previous_run_id: str | None = None
    """The session's previous turn, whose final workspace the gateway gives the agents."""
    config: RunConfig
    status: RunStatus = "running"
    created_at: float
    deadline: float
    """Epoch seconds at which coordination stops."""
    agents: list[AgentState]
    """In config order; ``agents[i]`` is ``config.agents[i]``."""
    answers: list[Answer] = Field(default_factory=list)
    """Every accepted answer, oldest first."""
    winner_label: str | None = None
    """Label of the presenting / winning agent."""
    final_answer: str | None = None
    message: str = ""
    """Why the run ended, when it did not complete."""
    waiting_since: float | None = None
    """When every agent but the troubled ones had voted on the current answers."""
    turn_usage: dict[str, Usage] = Field(default_factory=dict)
    """Turn id -> its usage as last reported (reports carry a turn's running total, so
    only what grew since is added to its agent's ``tokens`` and ``cost_usd``)."""
    secret: str = Field(default="", repr=False)
    """Key of the run's turn capabilities (see ``coordination.turn_token``)."""

    # -- what the adapter keeps with the state (not decided by the state machine) -----
    seq: int = 0
    """Transitions committed so far: numbers the outbox (message ids)."""
    outbox: list[Command] = Field(default_factory=list)
    """The commands of the last committed transition, stored with the state they came
    from so that whichever replica loads it can finish executing them."""
    writer: str = ""
    """The replica that committed this state (runs its timers first)."""
    committed_at: float = 0.0
    """Epoch seconds of that commit."""
    traceparent: str = ""
    """The run's trace context (W3C), carried by its turn requests; "" untraced."""

    @property
    def answer_set_version(self) -> int:
        """How many answers have been accepted in the run."""
        return len(self.answers)

    @property
    def over(self) -> bool:
        """True once the run reached a terminal status."""
        return self.status in TERMINAL_STATUSES

    def agent_config(self, agent: AgentState) -> AgentConfig:
        """The config entry of ``agent``."""
        return self.config.agents[label_index(agent.label) or 0]

    def taking_part(self) -> list[AgentState]:
        """The agents that coordinate: all of them, or only the first under MassGen's
        ``skip_coordination_rounds`` (whose first answer then wins without votes)."""
        if self.config.orchestrator.skip_coordination_rounds:
            return self.agents[:1]
        return self.agents

    def by_label(self, label: str) -> AgentState | None:
        """The agent with ``label``, or None."""
        for agent in self.agents:
            if agent.label == label:
                return agent
        return None

    def latest_answers(self) -> dict[str, Answer]:
        """Each agent's latest answer by label, in config order (agents without one left out)."""
        latest: dict[str, Answer] = {}
        for answer in self.answers:
            latest[answer.label] = answer
        return {a.label: latest[a.label] for a in self.agents if a.label in latest}


def next_wakeup(state: RunState) -> float | None:
    """Return the earliest epoch time at which a ``Tick`` would change ``state``.

    That is the run deadline, a current turn's deadline, or a retry coming due,
    whichever is first. None when the run is over.
    """
    if state.over:
        return None
    times: list[float] = []
    if state.status == "running":
        times.append(state.deadline)
    for agent in state.agents:
        if agent.turn is not None:
            times.append(agent.turn.deadline)
        if agent.retry_at is not None and state.status == "running":
            times.append(agent.retry_at)
    if state.waiting_since is not None and state.status == "running":
        times.append(state.waiting_since + TROUBLE_GRACE_SECONDS)
    return min(times) if times else None

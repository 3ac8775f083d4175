"""Request and response bodies of the HTTP API (they make up /openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from massgen_proto.events import RunStatus
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

__all__ = [
    "AgentView",
    "CancelBody",
    "ChatCompletionRequest",
    "ChatMessageIn",
    "CreateRunBody",
    "CreateSessionBody",
    "CreateTurnBody",
    "ErrorBody",
    "RunCreatedBody",
    "RunLinks",
    "RunList",
    "RunListItem",
    "RunView",
    "SessionView",
    "TeamList",
    "TeamView",
    "UsageView",
]

_CONFIG_EXAMPLE: JsonDict = {
    "agents": [
        {"id": "solver", "backend": {"type": "openai", "model": "gpt-4o-mini"}},
        {"id": "checker", "backend": {"type": "claude", "model": "claude-3-5-haiku-latest"}},
    ]
}

RunStatusName = RunStatus
"""A run's status (the contract's ``RunStatus``, under the name the API has used)."""
MAX_QUESTION = 100_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateRunBody(_Body):
    """Start a run: a team by name, or a whole config, or a turn of a session."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"team": "demo", "question": "What is the capital of Australia?"},
                {"config": _CONFIG_EXAMPLE, "question": "Why is the sky blue?"},
            ]
        },
    )

    question: str = Field(min_length=1, max_length=MAX_QUESTION)
    config: dict[str, Any] | None = None
    """A MassGen-format config (``agents`` / ``agent``, ``orchestrator``, ...) as JSON."""
    team: str | None = Field(default=None, min_length=1, max_length=200)
    """Name of a team configured on the server (``GET /v1/teams``)."""
    session_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Make the run the next turn of this session (it sees the session's history and
    starts from its last completed turn's final workspace)."""
    previous_run_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Start from this finished run's final workspace: each agent's workspace begins as
    a copy of the winner's files, the originals stay readable (not writable). Only one
    of the caller's own runs (403 otherwise); not with ``session_id``."""

    @model_validator(mode="after")
    def _one_source(self) -> CreateRunBody:
        if self.config is not None and self.team is not None:
            raise ValueError("give either 'config' or 'team', not both")
        if self.config is None and self.team is None and self.session_id is None:
            raise ValueError("give 'config' (a MassGen config) or 'team' (a team name)")
        return self


class RunLinks(BaseModel):
    self: str
    events: str
    cancel: str


class RunCreatedBody(BaseModel):
    """A run was accepted."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2a9c01d4e5b6a7",
                    "status": "running",
                    "session_id": None,
                    "links": {
                        "self": "/v1/runs/3f2a9c01d4e5b6a7",
                        "events": "/v1/runs/3f2a9c01d4e5b6a7/events",
                        "cancel": "/v1/runs/3f2a9c01d4e5b6a7/cancel",
                    },
                }
            ]
        }
    )

    id: str
    status: RunStatusName
    session_id: str | None = None
    links: RunLinks
    warnings: list[str] = Field(default_factory=list)
    """Config keys accepted but not applied, one message each (e.g. provider built-in
    tools); the run goes ahead without them."""


class AgentView(BaseModel):
    id: str
    label: str
    status: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    """Dollars of the agent's tokens (litellm's price map; local models cost nothing)."""


class Timings(BaseModel):
    created_at: float | None = None
    started_at: float | None = None
    first_turn_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    time_to_first_turn_seconds: float | None = None


class RunView(BaseModel):
    """A run as folded from its events."""

    id: str
    status: RunStatusName
    message: str = ""
    question: str
    team: str | None = None
    session_id: str | None = None
    final_answer: str | None = None
    winner: str | None = None
    """Config id of the winning agent."""
    answers: list[dict[str, str]]
    """``{agent, label, version, content}`` in acceptance order."""
    votes: list[dict[str, str]]
    """Current votes ``{voter, target, reason}`` (cleared by each new answer)."""
    agents: list[AgentView]
    timings: Timings
    links: RunLinks
    warnings: list[str] = Field(default_factory=list)
    """Config keys accepted but not applied (as in the create response)."""
    cost_usd: float = 0.0
    """Dollars of the run's tokens so far, all agents together."""


class UsageView(BaseModel):
    """A tenant's use today (UTC) and its daily limits."""

    tenant: str
    day: str
    """``YYYYMMDD`` (UTC)."""
    tokens: int
    cost_usd: float
    token_limit: int | None = None
    cost_limit_usd: float | None = None
    counted: bool
    """False when the server sets no daily limit (then nothing is counted)."""


class RunListItem(BaseModel):
    id: str
    status: str
    question: str
    team: str | None = None
    session_id: str | None = None
    created_at: float
    links: RunLinks


class RunList(BaseModel):
    data: list[RunListItem]
    total: int
    offset: int
    limit: int
    next_offset: int | None = None
    """Offset of the next page, or None on the last page."""


class CancelBody(_Body):
    reason: str = Field(default="cancelled by user", max_length=2000)


class TeamView(BaseModel):
    name: str
    description: str
    agents: list[dict[str, str]]
    """``{id, type, model}`` per agent."""


class TeamList(BaseModel):
    data: list[TeamView]


class CreateSessionBody(_Body):
    """Start a multi-turn conversation with a team (or a config)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"team": "demo"}]})

    team: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CreateSessionBody:
        if (self.team is None) == (self.config is None):
            raise ValueError("give exactly one of 'team' or 'config'")
        return self


class CreateTurnBody(_Body):
    """Ask the next question of a session."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "And its population?", "wait": False}]},
    )

    question: str = Field(min_length=1, max_length=MAX_QUESTION)
    wait: bool = False
    """Answer only when the run is over (the reply then holds the whole run)."""


class SessionTurnView(BaseModel):
    run_id: str
    question: str
    answer: str | None
    status: str


class SessionView(BaseModel):
    id: str
    team: str | None
    created_at: float
    turns: list[SessionTurnView]
    cleared_after: int = 0
    """Turns before this index were cleared: later turns see neither their history nor
    their files."""


class ChatContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    """An OpenAI chat message (text content only)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ChatContentPart] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI chat completion request; ``model`` names a team.

    Other OpenAI parameters (temperature, max_tokens, ...) are accepted and ignored:
    each agent's backend settings come from the team config.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": "demo",
                    "messages": [{"role": "user", "content": "What is the capital of Australia?"}],
                    "stream": True,
                    "massgen_reasoning": True,
                }
            ]
        },
    )

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=1000)
    stream: bool = False
    massgen_reasoning: bool = False
    """With ``stream``: also stream the agents' coordination work (their streamed text,
    answers, votes, restarts) as ``delta.reasoning_content``, each line prefixed with the
    agent's label. The final presentation is always ``delta.content``."""


class ErrorDetail(BaseModel):
    path: str
    """JSON path of the problem, e.g. ``body.config.agents[1].backend.type``."""
    message: str


class ErrorInfo(BaseModel):
    message: str
    type: str
    code: str | None = None
    path: str | None = None


class ErrorBody(BaseModel):
    """Every error reply (OpenAI-compatible ``error`` object, plus ``detail``)."""

    error: ErrorInfo
    detail: list[ErrorDetail] = Field(default_factory=list)

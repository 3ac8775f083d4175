"""Messages between workers and the mcp-gateway: list an agent's tools, call one, close a run.

Every request names the caller (run, agent id, label, phase): the gateway derives the
agent's tools and path permissions from the run's config and that phase. Replies are
one discriminated union (``GatewayReplyAdapter``); a refused request is an
``ErrorReply`` (see messages.py), a refused tool call is a ``ToolResult`` with
``is_error`` (and ``denied`` when a path permission said no), because the model must
read it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .media import AgentMedia, MediaRef
from .messages import CodeCheck, ErrorReply, Phase, RunAccepted
from .skills import AgentSkills

__all__ = [
    "KEEPALIVE_HEADER",
    "CheckRequest",
    "CheckResult",
    "KEEPALIVE_SECONDS",
    "MAX_KEEPALIVES",
    "CloseRunTools",
    "GatewayReply",
    "GatewayReplyAdapter",
    "GatewayRequest",
    "GatewayRequestAdapter",
    "ToolCallRequest",
    "ToolList",
    "ToolListRequest",
    "ToolResult",
]


KEEPALIVE_SECONDS = 2.0
"""While the gateway works on a request (a server starting, a long tool call) it sends
an empty message with the header ``KEEPALIVE_HEADER: working`` to the reply subject
this often; a worker that hears nothing for a few intervals takes the gateway for dead
(a killed replica) instead of waiting for the request's whole timeout."""
KEEPALIVE_HEADER = "Massgen-Status"
MAX_KEEPALIVES = 4000
"""Replies the gateway may send to one request (its NATS ``allow_responses``): keep-
alives for about two hours, then the answer."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Caller(_Message):
    run_id: str
    agent_id: str
    """Config id of the agent (never shown to a model)."""
    label: str
    """The agent's anonymous label, e.g. ``agent2``."""
    phase: Phase
    """``coordinate`` (context paths read-only) or ``present`` (the winner may write)."""
    token: str = Field(default="", repr=False)
    """The capability of the caller's turn (from its turn request)."""


class ToolListRequest(_Caller):
    """Which tools may this agent use in this phase?"""

    kind: Literal["tool_list_request"] = "tool_list_request"
    turn_id: str | None = None


class ToolCallRequest(_Caller):
    """Call one tool on behalf of an agent."""

    kind: Literal["tool_call_request"] = "tool_call_request"
    turn_id: str
    call_id: str = ""
    """The model's tool-call id (for logs and events)."""
    name: str
    """Tool name as offered: ``mcp__<server>__<tool>``."""
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    """Parsed JSON arguments, or the raw text when they were not valid JSON."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds the caller will wait; the gateway answers before that (None: its default)."""


class CheckRequest(_Caller):
    """Run an answer's code against the task's examples in the sandbox (-> CodeCheck)."""

    kind: Literal["check_request"] = "check_request"
    turn_id: str
    code: str = Field(max_length=100_000)
    examples: str = Field(max_length=10_000)


class CloseRunTools(_Message):
    """Close every MCP session of a run (also done on its ``run_finished`` event)."""

    kind: Literal["close_run_tools"] = "close_run_tools"
    run_id: str


GatewayRequest = Annotated[
    ToolListRequest | ToolCallRequest | CloseRunTools, Field(discriminator="kind")
]
GatewayRequestAdapter: TypeAdapter[GatewayRequest] = TypeAdapter(GatewayRequest)


class ToolList(_Message):
    """The tools an agent may call now, in OpenAI function-tool JSON."""

    kind: Literal["tool_list"] = "tool_list"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    """Servers that could not be reached, one message each (their tools are missing)."""
    media: AgentMedia | None = None
    """The agent's uploads and media tools (None: it has none)."""
    skills: AgentSkills | None = None
    """The run's skills (None: ``use_skills`` is off)."""


class ToolResult(_Message):
    """What a tool call returned, as the text the model reads."""

    kind: Literal["tool_result"] = "tool_result"
    name: str
    content: str
    is_error: bool = False
    denied: bool = False
    """True when a path permission refused the call (nothing was forwarded)."""
    media: list[MediaRef] = Field(default_factory=list)
    """Files the result shows the model (``read_multimodal_files``): the worker reads
    them and adds them to the conversation as image parts."""


class CheckResult(_Message):
    """The gateway's reply to a ``CheckRequest``."""

    kind: Literal["check_result"] = "check_result"
    check: CodeCheck


GatewayReply = Annotated[
    ToolList | ToolResult | CheckResult | RunAccepted | ErrorReply, Field(discriminator="kind")
]
GatewayReplyAdapter: TypeAdapter[GatewayReply] = TypeAdapter(GatewayReply)

"""A turn's tools through the mcp-gateway: listing, calls and file chunks, as request /
reply over NATS.

Each request names its caller (run, agent, label, phase) and carries the turn's
capability token, from which the gateway derives the tools and path permissions. A
gateway replica that dies mid-request is noticed by its silence (``keepalive``); a
listing is then asked again, a call is not (it may have had effects: the model decides).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypedDict

from massgen_kit import tracing
from massgen_kit.keepalive import ResponderSilent, request_with_keepalive
from massgen_proto.media import (
    AgentMedia,
    FileReadRequest,
    FilesReply,
    FilesReplyAdapter,
    FileWriteRequest,
    MediaRef,
)
from massgen_proto.messages import ErrorReply, Phase, TurnRequest
from massgen_proto.skills import AgentSkills
from massgen_proto.subjects import GATEWAY_FILES, GATEWAY_TOOLS_CALL, GATEWAY_TOOLS_LIST
from massgen_proto.tools import (
    GatewayReplyAdapter,
    ToolCallRequest,
    ToolList,
    ToolListRequest,
    ToolResult,
)

from .settings import WorkerSettings
from .stream import ToolCall
from .wire import Tool

if TYPE_CHECKING:
    from nats.aio.client import Client
    from structlog.typing import FilteringBoundLogger

__all__ = ["GatewayTools"]


class _Caller(TypedDict):
    """The fields naming the caller in every gateway request (``massgen_proto.tools``)."""

    run_id: str
    agent_id: str
    label: str
    phase: Phase
    token: str


class GatewayTools:
    """The turn's MCP tools through the mcp-gateway (request/reply over NATS)."""

    def __init__(
        self, nc: Client, request: TurnRequest, settings: WorkerSettings, tlog: FilteringBoundLogger
    ) -> None:
        self.nc = nc
        self.request = request
        self.settings = settings
        self.log = tlog
        self.media: AgentMedia | None = None
        """The agent's uploads and media tools, from the tool listing."""
        self.last_media: list[MediaRef] = []
        """The files the last tool result shows the model."""
        self.skills: AgentSkills | None = None
        """The run's skills, from the tool listing (None: ``use_skills`` is off)."""

    def _caller(self) -> _Caller:
        """Who calls: the gateway derives tools and permissions from it, and the turn's
        capability token proves the worker was handed this turn."""
        r = self.request
        return {
            "run_id": r.run_id,
            "agent_id": r.agent_id,
            "label": r.label,
            "phase": r.phase,
            "token": r.token,
        }

    async def _ask(self, subject: str, payload: bytes, timeout: float) -> bytes:
        with tracing.span(f"gateway.{subject.rsplit('.', 1)[-1]}", turn=self.request.turn_id):
            return await request_with_keepalive(
                self.nc, subject, payload, timeout, self.settings.gateway_silence,
                headers=tracing.headers(),
            )  # fmt: skip

    async def list_tools(self) -> list[Tool]:
        import nats.errors

        ask = ToolListRequest(turn_id=self.request.turn_id, **self._caller())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.tool_list_timeout
        while True:
            try:
                data = await self._ask(
                    GATEWAY_TOOLS_LIST, ask.model_dump_json().encode(),
                    max(0.1, deadline - loop.time()),
                )  # fmt: skip
                break
            except nats.errors.NoRespondersError:
                return []  # no gateway deployed: workflow tools only
            except ResponderSilent as error:
                # Its replica died mid-request: listing is harmless to repeat.
                self.log.warning("tool_list_retry", error=str(error))
                if deadline - loop.time() > 0:
                    continue
                return []
            except TimeoutError:
                self.log.warning("tool_list_timeout", timeout=self.settings.tool_list_timeout)
                return []
        parsed = GatewayReplyAdapter.validate_json(data)
        if not isinstance(parsed, ToolList):
            self.log.warning("tool_list_refused", error=getattr(parsed, "error", parsed.kind))
            return []
        for problem in parsed.errors:
            self.log.warning("tool_server_unavailable", error=problem)
        self.media = parsed.media
        self.skills = parsed.skills
        return parsed.tools

    async def call(self, call: ToolCall) -> str:
        import nats.errors

        self.last_media = []
        s = self.settings
        ask = ToolCallRequest(
            turn_id=self.request.turn_id, call_id=call.id, name=call.name,
            arguments=call.arguments, timeout=s.tool_call_timeout, **self._caller(),
        )  # fmt: skip
        try:
            data = await self._ask(
                GATEWAY_TOOLS_CALL, ask.model_dump_json().encode(), s.tool_call_timeout + 5.0
            )
        except (nats.errors.NoRespondersError, ResponderSilent, TimeoutError) as error:
            # Not repeated here: the call may have had effects. The model decides.
            self.log.warning("tool_call_unanswered", tool=call.name, error=repr(error))
            return (
                f"Error: the tool gateway did not answer the call of {call.name!r} ({error}); "
                "its effects, if any, are unknown: check, then try again if needed."
            )
        parsed = GatewayReplyAdapter.validate_json(data)
        if isinstance(parsed, ToolResult):
            self.last_media = list(parsed.media)
            return parsed.content
        return f"Error: {getattr(parsed, 'error', 'the tool call was refused')}"

    async def files(self, request: FileReadRequest | FileWriteRequest) -> FilesReply:
        """One chunk of an agent's file, read or written through the gateway (``media``)."""
        import nats.errors

        try:
            data = await self._ask(
                GATEWAY_FILES, request.model_dump_json().encode(), self.settings.tool_call_timeout
            )
        except (nats.errors.NoRespondersError, ResponderSilent, TimeoutError) as error:
            return ErrorReply(error=f"the tool gateway did not answer a file request ({error})")
        return FilesReplyAdapter.validate_json(data)

"""Calling a third-party MCP server's tool: every path argument checked, then forwarded."""

from __future__ import annotations

import copy
import os
from typing import TYPE_CHECKING

from massgen_proto.config import McpServerConfig
from massgen_proto.json_types import JsonObject
from massgen_proto.messages import Phase
from massgen_proto.tools import ToolResult

from .outcome import CallOutcome, denied_result, tool_error
from .sessions import SessionError, result_text
from .tool_paths import path_arguments

if TYPE_CHECKING:
    from .broker import AgentTools

__all__ = ["call_server"]


async def call_server(
    tools: AgentTools,
    phase: Phase,
    name: str,
    server: McpServerConfig,
    tool: str,
    arguments: JsonObject,
    seconds: float | None,
) -> CallOutcome:
    checked = _check_arguments(tools, phase, name, tool, arguments)
    if isinstance(checked, CallOutcome):
        return checked
    forwarded, read, created = checked
    limit = min(seconds or tools.run.settings.call_timeout, tools.run.settings.call_timeout)
    if server.timeout:
        limit = min(limit, server.timeout)
    breaker = tools.breaker(server.name)
    try:
        session = await tools.session(server)
    except SessionError as error:
        return tool_error(name, f"Error: MCP server {server.name!r} is unavailable: {error}")
    try:
        result = await session.call_tool(tool, forwarded, limit)
    except TimeoutError:
        breaker.failure(f"timed out after {limit:g} s")
        return tool_error(name, f"Error: {name} timed out after {limit:g} s")
    except SessionError as error:
        breaker.failure(str(error))
        return tool_error(name, f"Error: MCP server {server.name!r} failed: {error}")
    breaker.success()
    text, is_error = result_text(result)
    if not is_error:
        for path in read:
            tools.ledger.record_read(path)
        _record_created(tools, created)
    return CallOutcome(ToolResult(name=name, content=text, is_error=is_error))


def _check_arguments(
    tools: AgentTools, phase: Phase, name: str, tool: str, arguments: JsonObject
) -> CallOutcome | tuple[JsonObject, list[str], list[str]]:
    """A denial, or (arguments to forward, paths read, paths that may be created)."""
    scope = tools.scope(phase)
    forwarded = copy.deepcopy(arguments)
    created: list[str] = []
    read: list[str] = []
    for ref in path_arguments(tool, forwarded):
        decision = scope.check(ref.value, ref.access, tools.ledger)
        if not decision.allowed:
            return CallOutcome(denied_result(name, decision.message), decision)
        # Forward the resolved path, so the server acts on exactly what was checked.
        ref.replace(decision.path)
        if ref.access == "read":
            read.append(decision.path)
        elif not os.path.lexists(decision.path):
            created.append(decision.path)
    return forwarded, read, created


def _record_created(tools: AgentTools, paths: list[str]) -> None:
    for path in paths:
        if os.path.lexists(path):
            tools.ledger.record_created(path)

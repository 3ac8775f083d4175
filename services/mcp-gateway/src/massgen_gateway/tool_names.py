"""How the gateway names tools for a model, and which tools an agent is offered."""

from __future__ import annotations

from collections.abc import Mapping

from massgen_proto.json_types import JsonObject, JsonValue

__all__ = ["PREFIX", "openai_tool", "tool_name", "tool_visible"]

PREFIX = "mcp__"


def tool_name(server: str, tool: str) -> str:
    """The name a model sees: ``mcp__<server>__<tool>``."""
    return f"{PREFIX}{server}__{tool}"


def tool_visible(
    server: str,
    tool: str,
    backend_allowed: list[str] | None,
    backend_excluded: list[str] | None,
    server_allowed: list[str] | None = None,
    server_excluded: list[str] | None = None,
) -> bool:
    """Whether a tool is offered. A server-level list replaces the backend-level one;
    entries match the bare tool name and ``mcp__<server>__<tool>`` alike."""
    names = {tool, tool_name(server, tool)}
    allowed = server_allowed if server_allowed is not None else backend_allowed
    excluded = server_excluded if server_excluded is not None else backend_excluded
    if allowed is not None and not names.intersection(allowed):
        return False
    return not (excluded and names.intersection(excluded))


def openai_tool(name: str, description: str, schema: Mapping[str, JsonValue]) -> JsonObject:
    """A tool as OpenAI function-tool JSON (the form every listing returns)."""
    parameters: JsonValue = schema or {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {"name": name, "description": description[:1024], "parameters": parameters},
    }

"""The outcome of a tool call: its result and, when a path check refused it, the denial."""

from __future__ import annotations

from dataclasses import dataclass

from massgen_proto.tools import ToolResult

from .permissions import Decision

__all__ = ["CallOutcome", "denied_result", "tool_error"]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """A tool result and, when a path permission refused the call, the denial."""

    result: ToolResult
    denial: Decision | None = None


def tool_error(name: str, text: str) -> CallOutcome:
    return CallOutcome(ToolResult(name=name, content=text, is_error=True))


def denied_result(name: str, message: str) -> ToolResult:
    return ToolResult(name=name, content=message, is_error=True, denied=True)

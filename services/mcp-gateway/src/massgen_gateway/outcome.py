"""The outcome of a tool call: its result and, when a path check refused it, the denial."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from massgen_proto.tools import ToolResult

from .fdwalk import SymlinkRace, ToolError
from .permissions import AgentScope, Decision

__all__ = ["CallOutcome", "denied_result", "threaded_call", "tool_error"]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """A tool result and, when a path permission refused the call, the denial."""

    result: ToolResult
    denial: Decision | None = None


def tool_error(name: str, text: str) -> CallOutcome:
    return CallOutcome(ToolResult(name=name, content=text, is_error=True))


def denied_result(name: str, message: str) -> ToolResult:
    return ToolResult(name=name, content=message, is_error=True, denied=True)


async def threaded_call(name: str, scope: AgentScope, work: Callable[[], str]) -> CallOutcome:
    """Run a built-in tool's blocking file work in a thread: its text as the result, a
    ``ToolError`` as an error the model reads, a symlink swapped in during the call as a
    denial."""
    try:
        text = await asyncio.to_thread(work)
    except ToolError as error:
        return tool_error(name, f"Error: {error}")
    except SymlinkRace as race:
        d = race.decision
        denial = scope.deny(d.raw, d.path, "symlink_race", d.access, d.root)
        return CallOutcome(denied_result(name, denial.message), denial)
    return CallOutcome(ToolResult(name=name, content=text))

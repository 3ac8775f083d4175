"""Helpers of the worker unit tests: an in-process ToolBroker (the gateway's seam)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from massgen_worker.stream import ToolCall

__all__ = ["READ_TOOL", "Tools"]

READ_TOOL = "mcp__fs__read"


def _read_tool() -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": READ_TOOL,
            "description": "Read a file of the workspace.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }


class Tools:
    """A ToolBroker offering ``mcp__fs__read``; records calls, answers with ``result(call)``.

    Stands in for the gateway in unit tests of the turn loop (the real gateway is in
    tests/integration/gateway); ``run_turn`` only sees the ``ToolBroker`` protocol.
    """

    def __init__(self, result: Callable[[ToolCall], str] | None = None) -> None:
        self.result = result or (lambda call: f"contents of {call.arguments['path']}")
        self.calls: list[ToolCall] = []

    async def list_tools(self) -> list[dict[str, Any]]:
        return [_read_tool()]

    async def call(self, call: ToolCall) -> str:
        self.calls.append(call)
        return self.result(call)

"""Tool calls and offered tools as OpenAI JSON: a parsed call, a tool's name and parameters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JsonObj", "ToolCall", "new_call_id", "parameters", "tool_name"]

JsonObj = dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One parsed tool call."""

    name: str
    """Function name, one of the offered tools."""
    arguments: str
    """Arguments as a JSON text."""
    id: str = field(default_factory=lambda: new_call_id())
    """OpenAI-style call id."""

    def to_openai(self, index: int | None = None) -> JsonObj:
        """Render as an OpenAI ``tool_calls`` entry (with ``index`` for stream deltas)."""
        out: JsonObj = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        if index is not None:
            out = {"index": index, **out}
        return out


def new_call_id() -> str:
    """A fresh OpenAI-style tool call id."""
    return f"call_{uuid.uuid4().hex[:24]}"


def tool_name(tool: JsonObj) -> str:
    return str(tool.get("function", {}).get("name", ""))


def parameters(tool: JsonObj) -> JsonObj:
    params = tool.get("function", {}).get("parameters") or {}
    if not params:
        return {"type": "object", "properties": {}}
    return params

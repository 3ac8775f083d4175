"""Forced tool calls (``tool_choice`` "required" or a named function).

The offered tools become one JSON schema, the union of ``{"name": const, "arguments":
<parameters>}``, so llama.cpp's grammar makes every output a valid call; the output is
parsed whole (``parse_forced_call``) or streamed as argument deltas (``ForcedCallStream``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .calls import JsonObj, ToolCall, parameters, tool_name

__all__ = [
    "ForcedCallStream",
    "ToolChoiceError",
    "forced_tools",
    "parse_forced_call",
    "tool_call_schema",
]


class ToolChoiceError(ValueError):
    """``tool_choice`` names a tool that is not offered, or has an unknown form."""


def forced_tools(tools: list[JsonObj], tool_choice: Any) -> list[JsonObj] | None:
    """Decide whether a request must be answered with a tool call, and with which tools.

    Args:
        tools: The request's ``tools``.
        tool_choice: The request's ``tool_choice`` (absent = None).

    Returns:
        The tools to choose among when a call is forced, or None when the model may
        answer freely ("auto", "none" or absent).

    Raises:
        ToolChoiceError: A named function is not offered, or the form is unknown.
    """
    if not tools or tool_choice in (None, "auto", "none"):
        return None
    if tool_choice == "required":
        return list(tools)
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        picked = [t for t in tools if tool_name(t) == name]
        if not picked:
            offered = ", ".join(tool_name(t) for t in tools)
            raise ToolChoiceError(f"tool_choice names {name!r}, which is not offered ({offered})")
        return picked
    raise ToolChoiceError(
        f"unsupported tool_choice {tool_choice!r}: use 'auto', 'none', 'required' "
        "or {'type': 'function', 'function': {'name': ...}}"
    )


def tool_call_schema(tools: list[JsonObj]) -> JsonObj:
    """JSON schema whose instances are exactly the valid calls of the given tools.

    Each alternative is ``{"name": <const tool name>, "arguments": <its parameters>}``;
    several tools give an ``anyOf`` of them.
    """
    alternatives = [
        {
            "type": "object",
            "properties": {"name": {"const": tool_name(t)}, "arguments": parameters(t)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def parse_forced_call(text: str) -> ToolCall:
    """Parse the grammar-constrained output ``{"name": ..., "arguments": {...}}``.

    Raises:
        ValueError: The text is not such an object (e.g. generation was cut short).
    """
    obj = json.loads(text)
    if not isinstance(obj, dict) or "name" not in obj or "arguments" not in obj:
        raise ValueError(f"not a tool call object: {text[:200]!r}")
    return ToolCall(name=str(obj["name"]), arguments=json.dumps(obj["arguments"]))


_FORCED_HEAD = re.compile(
    r'^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*(?=\S)'
)
_TRAILING_CLOSERS = re.compile(r"[\s}]*$")


class ForcedCallStream:
    """Turns the streamed text of a forced call into incremental argument deltas.

    The grammar guarantees ``{"name": "...", "arguments": <object>}``. Once the head
    is complete the name is known; after that the text is the arguments followed by
    one closing brace, so everything except a trailing run of ``}``/whitespace can be
    forwarded at once.
    """

    def __init__(self) -> None:
        self.text = ""
        self.name: str | None = None
        self._args_start = 0
        self._sent = 0

    def feed(self, delta: str) -> tuple[str | None, str]:
        """Add streamed text.

        Returns:
            ``(name, args_delta)``: ``name`` only on the call that completes the head,
            and the newly safe part of the arguments text.
        """
        self.text += delta
        new_name = None
        if self.name is None:
            match = _FORCED_HEAD.match(self.text)
            if not match:
                return None, ""
            self.name = json.loads(f'"{match.group(1)}"')
            new_name = self.name
            self._args_start = self._sent = match.end()
        safe_end = _TRAILING_CLOSERS.search(self.text, self._sent).start()
        out = self.text[self._sent : max(safe_end, self._sent)]
        self._sent = max(safe_end, self._sent)
        return new_name, out

    def finish(self) -> str:
        """The rest of the arguments text once the stream has ended."""
        if self.name is None:
            return ""
        tail = self.text.rstrip()
        end = len(tail) - 1 if tail.endswith("}") else len(tail)
        end = max(len(tail[:end].rstrip()), self._sent)
        out = self.text[self._sent : end]
        self._sent = end
        return out

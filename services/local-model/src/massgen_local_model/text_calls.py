"""Tool calls a model writes as text: ``{"name": X, "arguments": {...}}`` (bare or fenced).

Whole (``extract_tool_calls``), held back while streamed (``TextToolCallStream``), or
recognised by their head and forwarded as the arguments are written
(``StreamingTextToolCalls``), never held whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .calls import ToolCall, new_call_id

__all__ = [
    "CallArguments",
    "CallStart",
    "StreamOut",
    "StreamingTextToolCalls",
    "TextToolCallStream",
    "extract_tool_calls",
]

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def _as_call(obj: Any, names: set[str]) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    if name not in names:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(name=name, arguments=json.dumps(args))


def extract_tool_calls(text: str, tool_names: set[str]) -> tuple[str | None, list[ToolCall]]:
    """Find text-JSON tool calls of offered tools in a model's reply.

    Accepts ``{"name": X, "arguments": {...}}`` objects (``parameters`` is taken as a
    synonym), bare or inside a fenced block, where ``X`` is in ``tool_names``. A fence
    may also hold a JSON list of such objects.

    Args:
        text: The assistant's content.
        tool_names: Names of the offered tools.

    Returns:
        ``(content, calls)``: the text left once the calls are removed (None if
        nothing but whitespace remains), and the calls in order. With no calls the
        content is ``text`` unchanged.
    """
    found: list[tuple[int, int, list[ToolCall]]] = []
    for fence in _FENCE.finditer(text):
        try:
            obj = json.loads(fence.group(1))
        except ValueError:
            continue
        items = [_as_call(o, tool_names) for o in (obj if isinstance(obj, list) else [obj])]
        if items and all(items):
            found.append((*fence.span(), [c for c in items if c]))
    pos = 0
    while (start := text.find("{", pos)) != -1:
        inside = [b for a, b, _ in found if a <= start < b]
        if inside:
            pos = inside[0]
            continue
        try:
            obj, end = _DECODER.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        call = _as_call(obj, tool_names)
        if call is None:
            pos = start + 1
            continue
        found.append((start, end, [call]))
        pos = end
    if not found:
        return text, []
    found.sort(key=lambda f: f[0])
    rest, last = [], 0
    for a, b, _ in found:
        rest.append(text[last:a])
        last = b
    rest.append(text[last:])
    content = "".join(rest).strip()
    return (content or None), [c for _, _, cs in found for c in cs]


_HEAD_PATTERN = re.compile(r'\{\s*"(name|function|tool)\b')
_MIN_DECIDE = 12


class TextToolCallStream:
    """Streams content through, holding back text that may become a tool call.

    Text is forwarded until a ``{`` or a backtick appears. From there it is held
    until it either can no longer be a tool call (then flushed) or the stream ends,
    when :meth:`finish` runs :func:`extract_tool_calls` on what was held.
    """

    def __init__(self, tool_names: set[str]) -> None:
        self.tool_names = tool_names
        self._held = ""

    def feed(self, delta: str) -> str:
        """Add streamed content; returns the part that is safe to forward now."""
        self._held += delta
        out = []
        while self._held:
            idx = _first_candidate(self._held)
            if idx is None:
                out.append(self._held)
                self._held = ""
                break
            out.append(self._held[:idx])
            self._held = self._held[idx:]
            verdict = _maybe_call(self._held)
            if verdict is None or verdict:
                break  # undecided or plausible: keep holding
            # Not a call: release the first character and look again.
            out.append(self._held[0])
            self._held = self._held[1:]
        return "".join(out)

    def finish(self) -> tuple[str | None, list[ToolCall]]:
        """End of stream: the held text as ``(content, calls)``."""
        held, self._held = self._held, ""
        if not held:
            return None, []
        content, calls = extract_tool_calls(held, self.tool_names)
        return (content if calls else held), calls


def _first_candidate(text: str) -> int | None:
    idx = [i for i in (text.find("{"), text.find("`")) if i != -1]
    return min(idx) if idx else None


def _maybe_call(held: str) -> bool | None:
    """Whether held text (starting at ``{`` or a backtick) may be a tool call.

    Returns None while undecided.
    """
    if held.startswith("`"):
        if len(held) < 3:
            return None if "```".startswith(held) else False
        if not held.startswith("```"):
            return False
        newline = held.find("\n")
        if newline == -1:
            return None if len(held) < 16 else False
        body = held[newline + 1 :].lstrip()
        if not body:
            return None
        return body.startswith("{") or body.startswith("[")
    compact = re.sub(r"\s+", "", held)
    if len(compact) < _MIN_DECIDE:
        return None if _could_start(compact) else False
    return bool(_HEAD_PATTERN.match(held))


def _could_start(compact: str) -> bool:
    return any(
        p.startswith(compact) or compact.startswith(p)
        for p in ('{"name"', '{"function"', '{"tool"')
    )


# ---------------------------------------------------------------- streamed text calls

_STREAM_HEAD = re.compile(
    r'^(```[a-zA-Z]*[^\S\n]*\n)?\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*'
    r'"(?:arguments|parameters)"\s*:\s*(?=\{)'
)


@dataclass(frozen=True)
class CallStart:
    """A text tool call was recognised: its ``index``, ``id`` and ``name``."""

    index: int
    id: str
    name: str


@dataclass(frozen=True)
class CallArguments:
    """More of the arguments text of call ``index``."""

    index: int
    text: str


StreamOut = str | CallStart | CallArguments
"""What ``StreamingTextToolCalls`` lets out: content text, or a piece of a tool call."""

_IN_PROSE, _IN_ARGS, _IN_CLOSE, _IN_FENCE = range(4)


class StreamingTextToolCalls:
    """Content in, content and tool calls out, as the model writes them.

    Prose goes through as in ``TextToolCallStream`` (held only while it may be a call).
    Once the held text starts like a call of an offered tool (``{"name": X,
    "arguments": {``, bare or after a fence opener), the call is announced and its
    arguments are forwarded as they arrive, up to the end of the arguments object; the
    rest of the call object (and a closing fence) is dropped. Held text that never
    started like that is judged at ``finish`` as before (``extract_tool_calls``).
    """

    def __init__(self, tool_names: set[str]) -> None:
        self.tool_names = tool_names
        self.calls = 0
        """Tool calls let out so far."""
        self.recognise = True
        """Set False to stop turning text into calls (the model made native calls)."""
        self._prose = TextToolCallStream(tool_names)
        self._state = _IN_PROSE
        self._fenced = False
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._fence = ""

    def feed(self, delta: str) -> list[StreamOut]:
        """Add streamed content; return what may go out now, in order."""
        out: list[StreamOut] = []
        text = delta
        while text:
            if self._state == _IN_PROSE:
                safe = self._prose.feed(text)
                text = ""
                if safe:
                    out.append(safe)
                if self.recognise:
                    text = self._start_call(out)
            elif self._state == _IN_ARGS:
                text = self._arguments(text, out)
            elif self._state == _IN_CLOSE:
                text = self._close(text)
            else:
                text = self._close_fence(text)
        return out

    def finish(self) -> list[StreamOut]:
        """End of stream: the held text as content and calls (a call cut short ends here)."""
        out: list[StreamOut] = []
        if self._state == _IN_PROSE:
            held = self._prose._held
            content, calls = self._prose.finish()
            if not self.recognise:
                content, calls = held or None, []
            if content:
                out.append(content)
            for call in calls:
                out += [CallStart(self.calls, call.id, call.name),
                        CallArguments(self.calls, call.arguments)]  # fmt: skip
                self.calls += 1
        elif self._state == _IN_FENCE and self._fence.strip() not in ("", "`", "``", "```"):
            out.append(self._fence)
        self._state = _IN_PROSE
        return out

    def _start_call(self, out: list[StreamOut]) -> str:
        """If the held text starts a call of an offered tool, announce it; return the
        text after the call's head (to read as arguments), else ""."""
        held = self._prose._held
        match = _STREAM_HEAD.match(held)
        if match is None:
            return ""
        try:
            name = json.loads(f'"{match.group(2)}"')
        except ValueError:
            return ""
        if name not in self.tool_names:
            return ""
        self._prose._held = ""
        out.append(CallStart(self.calls, new_call_id(), name))
        self._fenced = match.group(1) is not None
        self._state, self._depth, self._in_string, self._escaped = _IN_ARGS, 0, False, False
        return held[match.end() :]

    def _balanced_end(self, text: str) -> int | None:
        """Scan JSON text (strings, escapes, nesting) from the current depth; the index
        just past the bracket that closes depth 0, or None when ``text`` ends first."""
        for position, char in enumerate(text):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    return position + 1
        return None

    def _arguments(self, text: str, out: list[StreamOut]) -> str:
        """Forward the arguments object; return the text after its end."""
        end = self._balanced_end(text)
        if end is None:
            out.append(CallArguments(self.calls, text))
            return ""
        out.append(CallArguments(self.calls, text[:end]))
        self.calls += 1
        self._state, self._depth = _IN_CLOSE, 1
        return text[end:]

    def _close(self, text: str) -> str:
        """Drop the rest of the call object (normally one ``}``); return what follows."""
        end = self._balanced_end(text)
        if end is None:
            return ""
        self._state = _IN_FENCE if self._fenced else _IN_PROSE
        self._fence = ""
        return text[end:]

    def _close_fence(self, text: str) -> str:
        """Drop the fence closing a fenced call; anything else goes back to prose."""
        self._fence += text
        stripped = self._fence.lstrip()
        if stripped.startswith("```"):
            self._state = _IN_PROSE
            return stripped[3:]
        if "```".startswith(stripped):
            return ""  # whitespace or part of the fence so far
        self._state = _IN_PROSE
        rest, self._fence = self._fence, ""
        return rest

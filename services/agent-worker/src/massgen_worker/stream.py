"""Turn a model's streamed deltas into run events and one assembled assistant message.

Pure: no I/O, no litellm. ``parse_chunk`` reads one OpenAI-style stream chunk (a dict
or an object with the same attributes, such as litellm's ``ModelResponseStream``) into
a ``StreamDelta``; ``StreamAccumulator`` keeps the progress of one model response,
returns the events to publish as each delta arrives, and assembles the final message.

Tool calls stream too: their argument fragments come out as they arrive
(``ArgumentsDelta``), and for the calls named in ``decode`` (``new_answer``) the text of
one string field is decoded from the partial JSON as it grows (``FieldDelta``, see
``JsonFieldDecoder``), so a reader sees an answer being written, not only once it is done.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from massgen_proto.json_types import JsonObject

from .wire import Message

__all__ = [
    "ArgumentsDelta",
    "AssistantMessage",
    "ContentDelta",
    "FieldDelta",
    "JsonFieldDecoder",
    "StreamAccumulator",
    "StreamDelta",
    "StreamEvent",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallDone",
    "Usage",
    "parse_chunk",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one model call."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One fragment of a streamed tool call; ``index`` ties fragments together."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """What one stream chunk adds to the response."""

    content: str | None = None
    reasoning: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call as the model wrote it."""

    id: str
    name: str
    raw_arguments: str
    """The arguments text exactly as streamed."""

    @property
    def arguments(self) -> JsonObject | str:
        """Parsed JSON object arguments, or the raw text when they are not a JSON object."""
        text = self.raw_arguments.strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            return self.raw_arguments
        return value if isinstance(value, dict) else self.raw_arguments

    def to_openai(self) -> JsonObject:
        """The call in OpenAI chat ``tool_calls`` form (for the conversation history)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.raw_arguments},
        }


@dataclass(frozen=True, slots=True)
class AssistantMessage:
    """The assembled response of one model call."""

    text: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage | None
    finish_reason: str | None

    def to_openai(self) -> Message:
        """The message in OpenAI chat form, to append to the conversation."""
        message: Message = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        elif message["content"] is None:
            message["content"] = ""
        return message


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """Text to publish on a chunk channel as soon as it arrives."""

    channel: Literal["content", "reasoning"]
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDone:
    """A tool call whose fragments are complete."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class ArgumentsDelta:
    """A fragment of a tool call's arguments text, as generated (calls not decoded)."""

    index: int
    id: str
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class FieldDelta:
    """More decoded text of the string field a decoded call streams (``new_answer``'s
    ``content``): escapes resolved, exactly what the finished call's field will hold."""

    index: int
    name: str
    text: str


StreamEvent = ContentDelta | ArgumentsDelta | FieldDelta | ToolCallDone


# -- incremental JSON -------------------------------------------------------------------

_OUTSIDE, _STRING, _ESCAPE, _UNICODE, _DONE = range(5)
_SKIP, _KEY, _TARGET = range(3)
_STRING_STOP = re.compile(r'["\\]')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")


class JsonFieldDecoder:
    """The string value of one top-level key of a JSON object, decoded as the text grows.

    ``feed`` takes the next piece of the object's text (any split, even inside an escape
    or a surrogate pair) and returns the field's newly decoded text. Each character is
    looked at once, and runs of plain string text are sliced out whole, so an answer of
    n characters costs O(n) over the whole stream, not O(n) per token.

    Tolerant: text that is not valid JSON never raises; whatever can be read as the
    field's string is returned (an unknown escape gives its character). For valid JSON
    the pieces joined equal ``json.loads(text)[key]`` when that is a string (with a
    repeated key, every occurrence is streamed; ``json.loads`` keeps the last).

    Args:
        key: the top-level key whose string value to decode (``content``).
    """

    __slots__ = ("key", "_state", "_kind", "_depth", "_top_object", "_expect_key",
                 "_current_key", "_key_parts", "_hex", "_high")  # fmt: skip

    def __init__(self, key: str) -> None:
        self.key = key
        self._state = _OUTSIDE
        self._kind = _SKIP
        self._depth = 0
        self._top_object = False
        self._expect_key = False
        self._current_key: str | None = None
        self._key_parts: list[str] = []
        self._hex = ""
        self._high: int | None = None
        """A decoded high surrogate waiting to see whether a low one follows."""

    def feed(self, text: str) -> str:
        """Add the next piece of the JSON text; return the field's newly decoded text."""
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            state = self._state
            if state == _STRING:
                match = _STRING_STOP.search(text, i)
                stop = match.start() if match is not None else n
                if stop > i and self._kind != _SKIP:
                    self._put(text[i:stop], out)
                if match is None:
                    break
                if text[stop] == '"':
                    self._end_string(out)
                else:
                    self._state = _ESCAPE
                i = stop + 1
            elif state == _OUTSIDE:
                char = text[i]
                i += 1
                if char == '"':
                    self._start_string()
                elif char in "{[":
                    self._depth += 1
                    if self._depth == 1:
                        self._top_object = char == "{"
                        self._expect_key = self._top_object
                elif char in "}]":
                    self._depth -= 1
                    if self._depth <= 0:
                        self._state = _DONE
                elif self._depth == 1 and self._top_object:
                    if char == ":":
                        self._expect_key = False
                    elif char == ",":
                        self._expect_key = True
            elif state == _ESCAPE:
                char = text[i]
                i += 1
                if self._kind == _SKIP:
                    self._state = _STRING  # \u + 4 hex digits: never a quote, so skip one char
                elif char == "u":
                    self._state, self._hex = _UNICODE, ""
                else:
                    self._state = _STRING
                    self._put(_ESCAPES.get(char, char), out)
            elif state == _UNICODE:
                char = text[i]
                if char not in _HEX:  # a broken \u escape: drop it, read on as text
                    self._state = _STRING
                    continue
                i += 1
                self._hex += char
                if len(self._hex) == 4:
                    self._state = _STRING
                    self._code_point(int(self._hex, 16), out)
            else:  # _DONE: the object is closed; nothing after it is read
                break
        return "".join(out)

    def _start_string(self) -> None:
        self._state = _STRING
        if self._depth == 1 and self._top_object:
            if self._expect_key:
                self._kind, self._key_parts = _KEY, []
            else:
                self._kind = _TARGET if self._current_key == self.key else _SKIP
        else:
            self._kind = _SKIP

    def _end_string(self, out: list[str]) -> None:
        self._state = _OUTSIDE
        self._flush_high(out)
        if self._kind == _KEY:
            self._current_key = "".join(self._key_parts)

    def _put(self, text: str, out: list[str]) -> None:
        self._flush_high(out)
        if self._kind == _TARGET:
            out.append(text)
        elif self._kind == _KEY:
            self._key_parts.append(text)

    def _flush_high(self, out: list[str]) -> None:
        if self._high is not None:
            high, self._high = self._high, None
            self._put(chr(high), out)

    def _code_point(self, code: int, out: list[str]) -> None:
        if 0xDC00 <= code <= 0xDFFF and self._high is not None:
            high, self._high = self._high, None
            self._put(chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00)), out)
        elif 0xD800 <= code <= 0xDBFF:
            self._flush_high(out)
            self._high = code
        else:
            self._put(chr(code), out)


# -- accumulation -----------------------------------------------------------------------


@dataclass(slots=True)
class _PartialCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    done: bool = False
    decoder: JsonFieldDecoder | None = None
    routed: bool = False
    """Whether its arguments' route (decoded field or raw deltas) is decided."""


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _get(obj: object, key: str) -> Any:
    # litellm's chunk objects (or dicts) have no types: parse_chunk checks each value.
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def parse_chunk(chunk: object) -> StreamDelta:
    """Read one OpenAI-style ``chat.completion.chunk`` (dict or object) into a StreamDelta."""
    content = reasoning = finish_reason = None
    tool_calls: list[ToolCallDelta] = []
    choices = _get(chunk, "choices") or ()
    if choices:
        choice = choices[0]
        finish_reason = _get(choice, "finish_reason")
        delta = _get(choice, "delta")
        content = _get(delta, "content") or None
        reasoning = _get(delta, "reasoning_content") or _get(delta, "reasoning") or None
        for position, raw in enumerate(_get(delta, "tool_calls") or ()):
            function = _get(raw, "function")
            index = _get(raw, "index")
            tool_calls.append(
                ToolCallDelta(
                    index=position if index is None else int(index),
                    id=_get(raw, "id") or None,
                    name=_get(function, "name") or None,
                    arguments=_get(function, "arguments") or None,
                )
            )
    usage = None
    raw_usage = _get(chunk, "usage")
    if raw_usage is not None:
        prompt = _get(raw_usage, "prompt_tokens")
        completion = _get(raw_usage, "completion_tokens")
        if prompt is not None or completion is not None:
            usage = Usage(int(prompt or 0), int(completion or 0))
    return StreamDelta(
        content=content if isinstance(content, str) else None,
        reasoning=reasoning if isinstance(reasoning, str) else None,
        tool_calls=tuple(tool_calls),
        usage=usage,
        finish_reason=finish_reason,
    )


class StreamAccumulator:
    """Accumulates one model response.

    ``feed`` returns the events a delta makes publishable: text at once, tool-call
    arguments as they arrive (decoded for the calls named in ``decode``), a whole tool
    call once a later call index starts (or at ``finish``). ``finish`` returns the
    remaining events and the assembled message.

    Args:
        decode: tool name -> top-level string field of its arguments to stream decoded
            (``{"new_answer": "content"}``); other calls stream their raw arguments.
    """

    def __init__(self, decode: Mapping[str, str] | None = None) -> None:
        self._decode = dict(decode or {})
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._usage: Usage | None = None
        self._finish_reason: str | None = None
        self._finished = False

    def feed(self, delta: StreamDelta) -> list[StreamEvent]:
        """Add one delta; return the events it completes, in order."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        events: list[StreamEvent] = []
        if delta.reasoning:
            self._reasoning.append(delta.reasoning)
            events.append(ContentDelta("reasoning", delta.reasoning))
        if delta.content:
            self._text.append(delta.content)
            events.append(ContentDelta("content", delta.content))
        for fragment in delta.tool_calls:
            partial = self._calls.get(fragment.index)
            if partial is None:
                # A new index usually means the lower-indexed calls are complete
                # (OpenAI streams calls one after another); see _complete for the guard.
                touched = {f.index for f in delta.tool_calls}
                events.extend(self._complete(below=fragment.index, skip=touched))
                partial = self._calls[fragment.index] = _PartialCall()
            if fragment.id and not partial.id:
                partial.id = fragment.id
            if fragment.name:
                partial.name += fragment.name if partial.name != fragment.name else ""
            if fragment.arguments:
                partial.arguments.append(fragment.arguments)
                if event := self._arguments_event(fragment.index, partial, fragment.arguments):
                    events.append(event)
        if delta.usage is not None:
            self._usage = delta.usage
        if delta.finish_reason:
            self._finish_reason = delta.finish_reason
        return events

    def _arguments_event(
        self, index: int, partial: _PartialCall, text: str
    ) -> ArgumentsDelta | FieldDelta | None:
        if not partial.routed:
            # Decided at the first fragment of arguments: the name comes before them.
            partial.routed = True
            key = self._decode.get(partial.name)
            if key is not None:
                partial.decoder = JsonFieldDecoder(key)
        if partial.decoder is not None:
            decoded = partial.decoder.feed(text)
            return FieldDelta(index, partial.name, decoded) if decoded else None
        return ArgumentsDelta(index, partial.id or f"call_{index}", partial.name, text)

    def finish(self) -> tuple[list[StreamEvent], AssistantMessage]:
        """End the response: the last tool-call events and the assembled message."""
        events = self._complete(below=None)
        self._finished = True
        message = AssistantMessage(
            text="".join(self._text),
            reasoning="".join(self._reasoning),
            tool_calls=tuple(self._call(index) for index in sorted(self._calls)),
            usage=self._usage,
            finish_reason=self._finish_reason,
        )
        return events, message

    def _call(self, index: int) -> ToolCall:
        partial = self._calls[index]
        return ToolCall(
            id=partial.id or f"call_{index}",
            name=partial.name,
            raw_arguments="".join(partial.arguments),
        )

    def _complete(
        self, below: int | None, skip: frozenset[int] | set[int] = frozenset()
    ) -> list[StreamEvent]:
        """Mark calls complete: all at the end, else those below ``below`` that look done.

        Mid-stream, a call only counts as complete when its arguments already parse as
        JSON and it has no fragment in the current delta, so providers that interleave
        the fragments of parallel calls still get whole calls (at the latest at finish).
        """
        events: list[StreamEvent] = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            if partial.done:
                continue
            if below is not None and (
                index >= below or index in skip or not _parses("".join(partial.arguments))
            ):
                continue
            partial.done = True
            events.append(ToolCallDone(self._call(index)))
        return events

"""Turn a model's streamed deltas into run events and one assembled assistant message.

Pure: no I/O, no litellm. ``parse_chunk`` reads one OpenAI-style stream chunk (a dict
or an object with the same attributes, such as litellm's ``ModelResponseStream``) into
a ``StreamDelta``; ``StreamAccumulator`` keeps the progress of one model response,
returns the events to publish as each delta arrives, and assembles the final message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AssistantMessage",
    "ContentDelta",
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
    def arguments(self) -> dict[str, Any] | str:
        """Parsed JSON object arguments, or the raw text when they are not a JSON object."""
        text = self.raw_arguments.strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            return self.raw_arguments
        return value if isinstance(value, dict) else self.raw_arguments

    def to_openai(self) -> dict[str, Any]:
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

    def to_openai(self) -> dict[str, Any]:
        """The message in OpenAI chat form, to append to the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
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


StreamEvent = ContentDelta | ToolCallDone


@dataclass(slots=True)
class _PartialCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    done: bool = False


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def parse_chunk(chunk: Any) -> StreamDelta:
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

    ``feed`` returns the events a delta makes publishable: text at once, a tool call
    once a later call index starts (or at ``finish``). ``finish`` returns the
    remaining events and the assembled message.
    """

    def __init__(self) -> None:
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
        if delta.usage is not None:
            self._usage = delta.usage
        if delta.finish_reason:
            self._finish_reason = delta.finish_reason
        return events

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

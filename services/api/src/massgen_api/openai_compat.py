"""OpenAI chat-completion shapes built from run events. Pure.

A team behaves as a model: the conversation's last user message is the question,
the earlier messages are the history, and the winner's final presentation is the
reply. ``StreamTranslator`` turns a run's events into ``chat.completion.chunk``
deltas as they arrive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from massgen_proto import events as ev
from massgen_proto.json_types import JsonObject, JsonValue
from massgen_proto.messages import ChatMessage

from .models import ChatMessageIn

__all__ = ["StreamTranslator", "chunk", "completion", "split_messages"]


class MessagesError(ValueError):
    """The messages cannot be a question; ``path`` points at the offending message."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _text(message: ChatMessageIn) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text or "" for part in message.content if part.type == "text")


# The roles a team's conversation has, for each role an OpenAI client may send.
_HISTORY_ROLES: dict[str, Literal["system", "user", "assistant"]] = {
    "system": "system", "developer": "system", "user": "user", "assistant": "assistant",
    "tool": "user",
}  # fmt: skip


def split_messages(messages: list[ChatMessageIn]) -> tuple[str, list[ChatMessage]]:
    """(question, history) of an OpenAI message list.

    Raises:
        MessagesError: the last message is not a non-empty user message.
    """
    last = messages[-1]
    where = f"body.messages[{len(messages) - 1}]"
    if last.role != "user":
        raise MessagesError(f"{where}.role", "the last message must be the user's question")
    question = _text(last).strip()
    if not question:
        raise MessagesError(f"{where}.content", "the question is empty")
    history: list[ChatMessage] = []
    for message in messages[:-1]:
        role = _HISTORY_ROLES[message.role]
        text = _text(message)
        if text:
            history.append(ChatMessage(role=role, content=text))
    return question, history


def usage_of(tokens: dict[str, dict[str, int]]) -> dict[str, int]:
    prompt = sum(t.get("prompt_tokens", 0) for t in tokens.values())
    completion_tokens = sum(t.get("completion_tokens", 0) for t in tokens.values())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def completion(
    completion_id: str, model: str, created: int, content: str, usage: dict[str, int]
) -> JsonObject:
    """A whole ``chat.completion`` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: Mapping[str, JsonValue],
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> JsonObject:
    """One ``chat.completion.chunk`` object."""
    body: JsonObject = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def _json_object(text: str) -> JsonObject:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _clip(text: str, limit: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _streamed_note(event: ev.Chunk) -> str | None:
    """The reasoning note of a streamed answer, vote or tool call (None: nothing to say).

    The answer an agent writes streams as it is generated (``answer`` chunks); a tool
    call's raw arguments (``tool_args``) are left out, its whole call and result are one
    line each; workflow calls show as their answer / vote lines instead.
    """
    label = event.label
    match event.channel:
        case "answer":
            return f"[{label}] ✎ {event.text}" if event.text else None
        case "vote":
            vote = _json_object(event.text)
            return f"\n[{label}] voting for {vote.get('target')}: {vote.get('reason', '')}\n"
        case "tool_call":
            call = _json_object(event.text)
            if not call or call.get("name") in ev.WORKFLOW_TOOLS:
                return None
            arguments = call.get("arguments")
            shown = json.dumps(arguments, ensure_ascii=False) if arguments else ""
            return f"\n[{label}] → {call.get('name')}({_clip(shown)})\n"
        case "tool_result":
            result = _json_object(event.text)
            if not result or result.get("name") in ev.WORKFLOW_TOOLS:
                return None
            return f"[{label}] ← {result.get('name')}: {_clip(str(result.get('content', '')))}\n"
        case _:
            return None


@dataclass
class StreamTranslator:
    """Run events in, chunk deltas out.

    ``feed(event)`` returns the deltas to send for it; ``done`` turns True with
    ``run_finished`` and ``error`` then holds the message of a run that ended
    without a final answer.
    """

    reasoning: bool = False
    done: bool = False
    error: str | None = None
    streamed_content: bool = False
    final: str | None = None
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    _present_turns: set[str] = field(default_factory=set)
    _presenter: str | None = None

    def _is_presentation(self, event: ev.Chunk) -> bool:
        return event.turn_id in self._present_turns or event.agent == self._presenter

    def feed(self, event: ev.RunEvent) -> list[JsonObject]:
        out: list[JsonObject] = []
        note: str | None = None
        match event:
            case ev.TurnStarted() if event.phase == "present":
                self._present_turns.add(event.turn_id)
            case ev.PresentationStarted():
                self._presenter = event.agent
                note = f"[{event.label}] presents the final answer\n"
            case ev.Chunk() if self._is_presentation(event):
                if event.channel == "content" and event.text:
                    self.streamed_content = True
                    out.append({"content": event.text})
                elif event.channel != "reasoning":
                    note = _streamed_note(event)  # the winner's tool calls while presenting
            case ev.Chunk() if event.channel in ("content", "reasoning"):
                note = f"[{event.label}] {event.text}" if event.text else None
            case ev.Chunk():
                note = _streamed_note(event)
            case ev.AnswerAccepted():
                note = f"\n[{event.label}] answer {event.version} accepted\n"
            case ev.WorkflowRejected():
                note = f"\n[{event.label}] {event.tool or 'no tool call'} rejected: {event.error}\n"
            case ev.ToolDenied():
                note = f"\n[{event.label}] ⛔ {event.tool} denied {event.path} ({event.rule})\n"
            case ev.VoteAccepted():
                note = f"\n[{event.label}] votes for {event.target}: {event.reason}\n"
            case ev.Restart():
                note = f"\n[{event.label}] restarts: {event.reason}\n"
            case ev.Consensus():
                note = f"\nconsensus: {event.winner_label} wins\n"
            case ev.TokenUsage():
                usage = self.tokens.setdefault(
                    event.agent, {"prompt_tokens": 0, "completion_tokens": 0}
                )
                usage["prompt_tokens"] += event.prompt_tokens
                usage["completion_tokens"] += event.completion_tokens
            case ev.FinalAnswer():
                self.final = event.content
                if not self.streamed_content or event.fallback:
                    out.append({"content": event.content})
                    self.streamed_content = True
            case ev.RunFinished():
                self.done = True
                if self.final is None:
                    self.error = f"run {event.status}: {event.message or 'no final answer'}"
            case _:
                pass
        if note and self.reasoning:
            out.insert(0, {"reasoning_content": note})
        return out

"""What a provider's own tools (web search, code execution) add to a streamed response.

Pure: no I/O, no litellm import. ``ProviderStream`` sits between litellm's chunks and
the turn's ``StreamDelta``s and

- keeps the provider's own tool calls (Anthropic's ``server_tool_use``: web search,
  code execution), which the provider already ran, out of the function calls the turn
  executes, and reports them on the reasoning channel instead (query, command, output);
- collects the sources a provider cites (Anthropic citations, Gemini grounding as
  ``url_citation`` annotations) and carries them into the answer: appended to a
  ``new_answer``'s content when the response submits one, else to the response text;
- repairs a tool call whose first fragment already held its whole arguments and whose
  arguments then stream again (litellm's simulated stream of xAI's Responses API);
- for a model that cannot combine its search tool with function tools (Gemini before
  3), reads the function call from the text (see ``text_tool_prompt``).

The text protocol: the offered function tools are described in the system message and
the model ends its reply with one JSON object ``{"tool": NAME, "arguments": {...}}``;
earlier tool calls and results in the conversation are rewritten as text the same way
(``text_tool_messages``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from massgen_proto.json_types import JsonObject, JsonValue, object_of, objects_of

from .stream import StreamDelta, ToolCallDelta, parse_chunk
from .wire import Message

__all__ = [
    "ANSWER_FIELDS",
    "ProviderStream",
    "find_text_tool_call",
    "sources_text",
    "text_tool_messages",
    "text_tool_prompt",
]

ANSWER_FIELDS: Mapping[str, str] = {"new_answer": "content"}
"""Tool calls that carry the agent's answer, and their text field: cited sources go
there (the workflow tool the orchestrator offers, see ``prompts.NEW_ANSWER``)."""

# Tool names a provider runs itself (Anthropic server tools); a call of one of them that
# the turn did not offer as a function is the provider's, not the model asking us.
_PROVIDER_TOOL_NAMES = frozenset(
    {
        "web_search",
        "web_fetch",
        "code_execution",
        "bash_code_execution",
        "text_editor_code_execution",
    }
)
_SERVER_ID_PREFIX = "srvtoolu_"


def _get(obj: object, name: str) -> Any:
    # litellm's chunk objects (or dicts) have no types: callers check what they use.
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def sources_text(sources: Sequence[tuple[str, str]]) -> str:
    """``Sources:`` followed by one ``- title: url`` line per source."""
    lines = [
        f"- {title}: {url}" if title and title != url else f"- {url}" for title, url in sources
    ]
    return "Sources:\n" + "\n".join(lines)


@dataclass
class _Call:
    """A tool call seen in the stream, by index."""

    name: str | None = None
    arguments: str = ""
    provider: bool = False
    """Run by the provider (its result is already in the response): not passed on."""
    whole: bool = False
    """Its first fragment held complete JSON arguments: later fragments repeat them."""
    buffered: list[ToolCallDelta] = field(default_factory=list)
    """Fragments held back to add the sources to the answer at the end."""


class ProviderStream:
    """Turns litellm stream chunks into ``StreamDelta``s (see the module docstring).

    Args:
        offered: names of the function tools the call offered.
        cite: collect cited sources and carry them into the answer.
        hold_answers: hold back an answer call's fragments until the end even before any
            source is seen (a provider that cites after the call, e.g. Gemini).
        text_tools: the call used the text protocol: read the function call from the
            text at the end (None: it did not).
    """

    def __init__(
        self,
        offered: Iterable[str] = (),
        cite: bool = False,
        hold_answers: bool = False,
        text_tools: Iterable[str] | None = None,
    ) -> None:
        self._offered = frozenset(offered)
        self._cite = cite
        self._hold_answers = hold_answers
        self._text_tools = None if text_tools is None else frozenset(text_tools)
        self._calls: dict[int, _Call] = {}
        self._sources: dict[str, str] = {}
        self._text: list[str] = []
        self._notes: set[str] = set()
        self._finished = False

    @property
    def sources(self) -> list[tuple[str, str]]:
        """``(title, url)`` of every source cited so far, in order."""
        return [(title, url) for url, title in self._sources.items()]

    def feed(self, chunk: object) -> list[StreamDelta]:
        """The deltas one litellm chunk (object or dict) makes, in order."""
        if self._finished:
            delta = parse_chunk(chunk)
            return [delta] if delta.usage or delta.content or delta.tool_calls else []
        out: list[StreamDelta] = []
        raw_delta = self._raw_delta(chunk)
        out += self._provider_fields(raw_delta)
        delta = parse_chunk(chunk)
        calls = tuple(c for c in (self._call(part) for part in delta.tool_calls) if c is not None)
        content = delta.content
        if content and self._text_tools is not None:
            self._text.append(content)
        if content or delta.reasoning or calls or delta.usage:
            out.append(
                StreamDelta(content=content, reasoning=delta.reasoning, tool_calls=calls,
                            usage=delta.usage)
            )  # fmt: skip
        if delta.finish_reason:
            out += self.finish(delta.finish_reason)
        return out

    def finish(self, finish_reason: str | None = None) -> list[StreamDelta]:
        """What is left at the end of the response: calls held back, calls read from the
        text, the sources, then ``finish_reason`` (once; later calls return nothing)."""
        if self._finished:
            return []
        self._finished = True
        out: list[StreamDelta] = []
        sources = self.sources
        cited = False
        for call in self._calls.values():
            if not call.buffered:
                continue
            fragments = call.buffered
            field_name = ANSWER_FIELDS.get(call.name or "")
            if sources and field_name is not None:
                arguments = _with_sources(call.arguments, field_name, sources)
                if arguments is not None:
                    first = fragments[0]
                    fragments = [ToolCallDelta(first.index, first.id, first.name, arguments)]
                    cited = True
            out.append(StreamDelta(tool_calls=tuple(fragments)))
        if self._text_tools is not None:
            found = find_text_tool_call("".join(self._text), self._text_tools)
            if found is not None:
                name, written = found
                field_name = ANSWER_FIELDS.get(name)
                answer = written.get(field_name) if field_name is not None else None
                if sources and field_name is not None and isinstance(answer, str):
                    written = {**written, field_name: answer + "\n\n" + sources_text(sources)}
                    cited = True
                index = max(self._calls, default=-1) + 1
                call_delta = ToolCallDelta(index, f"call_text_{index}", name, json.dumps(written))
                out.append(StreamDelta(tool_calls=(call_delta,)))
                finish_reason = "tool_calls"
        if sources and not cited:
            out.append(StreamDelta(content="\n\n" + sources_text(sources)))
        has_calls = any(not c.provider for c in self._calls.values())
        if finish_reason == "tool_calls" and not has_calls and self._text_tools is None:
            finish_reason = "stop"  # only the provider's own calls: the reply is text
        out.append(StreamDelta(finish_reason=finish_reason))
        return out

    # -- internals ------------------------------------------------------------------

    @staticmethod
    def _raw_delta(chunk: object) -> object:
        choices = _get(chunk, "choices") or ()
        return _get(choices[0], "delta") if choices else None

    def _call(self, part: ToolCallDelta) -> ToolCallDelta | None:
        """Pass one tool-call fragment on, hold it back, or keep it for the notes."""
        call = self._calls.get(part.index)
        if call is None:
            call = self._calls[part.index] = _Call(name=part.name)
            call.provider = bool(part.id and part.id.startswith(_SERVER_ID_PREFIX)) or (
                part.name in _PROVIDER_TOOL_NAMES and part.name not in self._offered
            )
            call.whole = _is_json_object(part.arguments)
            held = self._hold_answers or bool(self._sources)
            if not call.provider and self._cite and held and part.name in ANSWER_FIELDS:
                call.buffered.append(part)
                call.arguments += part.arguments or ""
                return None
        elif call.whole and part.arguments:
            return None  # the same arguments again
        call.name = call.name or part.name
        call.arguments += part.arguments or ""
        if call.provider:
            return None
        if call.buffered:
            call.buffered.append(part)
            return None
        return part

    def _provider_fields(self, raw_delta: object) -> list[StreamDelta]:
        """Notes (reasoning channel) and sources from litellm's provider fields."""
        out: list[StreamDelta] = []
        fields = _get(raw_delta, "provider_specific_fields") or {}
        if self._cite:
            citation = _get(fields, "citation")
            if citation:
                self._add_source(_get(citation, "title"), _get(citation, "url"))
            for annotation in _get(raw_delta, "annotations") or ():
                cited = _get(annotation, "url_citation") or annotation
                self._add_source(_get(cited, "title"), _get(cited, "url"))
        for search in (_get(fields, "web_search_calls") or {}).values():
            action = _get(search, "action") or {}
            if _get(search, "status") == "completed":
                query = _get(action, "query") or ", ".join(_get(action, "queries") or ())
                found = len(_get(action, "sources") or ())
                plural = "" if found == 1 else "s"
                out += self._note(f"web search: {query} ({found} result{plural})")
        for run in _get(fields, "code_interpreter_results") or ():
            code = str(_get(run, "code") or "").strip()
            logs = "".join(
                str(_get(o, "logs") or "") for o in _get(run, "outputs") or () if _get(o, "logs")
            ).strip()
            out += self._note(f"code execution:\n{code}" + (f"\n{logs}" if logs else ""))
        return out

    def _note(self, text: str) -> list[StreamDelta]:
        # litellm repeats the provider fields it has gathered so far; say each once.
        if text in self._notes:
            return []
        self._notes.add(text)
        return [StreamDelta(reasoning=f"\n[{text}]\n")]

    def _add_source(self, title: object, url: object) -> None:
        if isinstance(url, str) and url and url not in self._sources:
            self._sources[url] = str(title or url)


def _is_json_object(text: str | None) -> bool:
    if not text or not text.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _with_sources(
    arguments: str, field_name: str, sources: Sequence[tuple[str, str]]
) -> str | None:
    """``arguments`` with the sources appended to its string ``field_name`` (None: the
    arguments are not a JSON object with that field; they are left as they are)."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get(field_name), str):
        return None
    value[field_name] += "\n\n" + sources_text(sources)
    return json.dumps(value)


# -- the text protocol -------------------------------------------------------------------


def text_tool_prompt(tools: Sequence[Mapping[str, JsonValue]]) -> str:
    """System-message text describing ``tools`` (OpenAI function tools) as the JSON reply
    the model ends with, for a call that offers them as text instead of functions."""
    lines = [
        "Your tools in this reply are described below; they cannot be called as functions. "
        "Use your search tool freely first. Then end your reply with exactly one JSON object "
        'on its own, naming one tool: {"tool": "<name>", "arguments": {...}}. '
        "Nothing may follow it.",
    ]
    for tool in tools:
        function = object_of(tool.get("function"))
        parameters = object_of(function.get("parameters"))
        properties = {
            name: {k: v for k, v in object_of(spec).items() if k in ("type", "enum", "description")}
            for name, spec in object_of(parameters.get("properties")).items()
        }
        description = function.get("description")
        lines.append(
            f"- {function.get('name')}: "
            f"{description.strip() if isinstance(description, str) else ''} "
            f"arguments: {json.dumps(properties)}"
        )
    return "\n".join(lines)


def text_tool_messages(
    messages: Sequence[Mapping[str, JsonValue]], tools: Sequence[Mapping[str, JsonValue]]
) -> list[Message]:
    """The conversation for a text-protocol call: the tools described in the system
    message, earlier calls as the JSON the model wrote, results as user messages."""
    prompt = text_tool_prompt(tools)
    out: list[Message] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            text = str(message.get("content") or "")
            for call in objects_of(message["tool_calls"]):
                function = object_of(call.get("function"))
                arguments = _parsed_arguments(function.get("arguments"))
                written = json.dumps({"tool": function.get("name"), "arguments": arguments})
                if written not in text:
                    text = f"{text}\n{written}".strip()
            out.append({"role": "assistant", "content": text})
        elif role == "tool":
            out.append({
                "role": "user",
                "content": f"Result of {message.get('name') or 'the tool'}:\n"
                f"{message.get('content') or ''}",
            })  # fmt: skip
        else:
            out.append(dict(message))
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{prompt}".strip()
    else:
        out.insert(0, {"role": "system", "content": prompt})
    return out


def _parsed_arguments(raw: JsonValue) -> JsonValue:
    """A call's arguments as the model wrote them: parsed JSON, else the text itself."""
    if not isinstance(raw, str | None):
        return raw  # already parsed
    try:
        parsed: JsonValue = json.loads(raw or "{}")
    except ValueError:
        return raw
    return parsed


def find_text_tool_call(text: str, names: Iterable[str]) -> tuple[str, JsonObject] | None:
    """The last ``{"tool": NAME, "arguments": {...}}`` object in ``text`` naming one of
    ``names`` (fenced in ```` ```json ```` or not), or None."""
    allowed = frozenset(names)
    decoder = json.JSONDecoder()
    found = None
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict) and value.get("tool") in allowed:
            arguments = value.get("arguments")
            if not isinstance(arguments, dict):
                # {"tool": "vote", "agent_id": ...}: the arguments written beside the name
                arguments = {k: v for k, v in value.items() if k not in ("tool", "arguments")}
            tool: str = value["tool"]  # one of ``names``
            found = (tool, arguments)
        position = text.find("{", end)
    return found

"""One agent for every provider protocol, deciding from the conversation: for runs of
whole configs (MassGen's example corpus) against the fake providers.

A run's number of model calls depends on timing (restarts, who answers first), so the
fakes get a behaviour instead of a script. Each protocol has a reader (``read_*``: what a
request offers and already holds, as an :class:`Offer`) and a writer (a :class:`Move` as
that protocol's reply); :func:`decide` is the same agent for all of them:

1. in a coordination turn whose conversation holds no tool result yet, call one tool
   that shows the config's tools run (``execute_command``, a custom tool, an MCP
   server's ``echo``; see :data:`PROBES`), when one is offered;
2. answer (``new_answer``) unless the answer is already among the current answers;
3. else vote for the first label the vote tool offers;
4. with no workflow tools (the final presentation), reply with the final text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .openai_server import Step, answer, text, tool_call, vote
from .provider_servers import ProviderRequest, Reply, anthropic, gemini, responses

__all__ = [
    "ANSWER",
    "PROBES",
    "PROBE_COMMAND",
    "Move",
    "Offer",
    "chat_behaviour",
    "decide",
    "probe",
    "provider_behaviour",
    "read_anthropic",
    "read_chat",
    "read_gemini",
    "read_responses",
    "reply_anthropic",
    "reply_chat",
    "reply_gemini",
    "reply_responses",
]

PROBE_COMMAND = "python3 -c \"print('corpus-probe-' + str(6 * 7))\""
"""The command the agent runs: Python, which the command allow-lists of MassGen's
examples let through (their block-lists may refuse it: the refusal is the result then)."""

PROBES: tuple[tuple[str, dict[str, Any] | None, str], ...] = (
    ("mcp__workspace__execute_command", {"command": PROBE_COMMAND}, "corpus-probe-42"),
    ("custom_tool__two_num_tool", {"x": 2, "y": 3}, "2 + 3 = 5"),
    ("custom_tool__", None, ""),
    ("mcp__", {"text": "corpus-probe"}, "echo: corpus-probe"),
)  # fmt: skip
"""``(tool name or prefix, arguments, text its result holds)`` in order of preference: a
prefix matches the first offered tool that starts with it (``mcp__`` only a server's
``echo``); None arguments are built from the tool's schema and the result not checked."""

ANSWER = "The corpus answer: 42."
"""What every agent answers (the same answer from two agents counts as agreement)."""

_WORKFLOW = ("new_answer", "vote")
_TEXT_TOOL = re.compile(r"^- ([\w.\-]+): .*?arguments: (\{.*\})\s*$")


@dataclass(frozen=True)
class Offer:
    """What one request offers the agent and what its conversation already holds."""

    key: str
    """The API key it carried: says which config's agent made it."""
    tools: Mapping[str, Mapping[str, Any]]
    """Function tools offered (as functions, or described as text): name -> properties."""
    user_text: str
    """The user messages (the task and the current answers)."""
    results: tuple[str, ...] = ()
    """Tool results already in the conversation."""
    provider_tools: tuple[Any, ...] = ()
    """The provider's own tools the request turns on, as sent."""
    as_text: bool = False
    """The function tools are described in the system message (Gemini before 3)."""
    system_text: str = ""
    """The system instructions (system messages, ``system``, ``instructions``)."""

    @property
    def vote_labels(self) -> list[str]:
        return list((self.tools.get("vote") or {}).get("agent_id", {}).get("enum") or [])


@dataclass(frozen=True)
class Move:
    """A reply: a tool call (``tool`` set) or text."""

    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str = ""


def probe(tools: Mapping[str, Mapping[str, Any]]) -> tuple[Move, str] | None:
    """The call that shows the offered tools run (see :data:`PROBES`), and the text its
    result holds ("" when not known); None when no such tool is offered."""
    for name, arguments, shows in PROBES:
        for offered, properties in tools.items():
            if offered == name or (name.endswith("__") and offered.startswith(name)):
                if name == "mcp__" and not offered.endswith("__echo"):
                    continue
                return Move(offered, arguments or _arguments_for(properties)), shows
    return None


def _arguments_for(properties: Mapping[str, Any]) -> dict[str, Any]:
    values = {"integer": 2, "number": 2, "boolean": True, "string": "corpus-probe"}
    return {k: values.get(str(spec.get("type")), "corpus-probe") for k, spec in properties.items()}


def decide(offer: Offer, my_answer: str) -> Move:
    """The agent's move (see the module docstring)."""
    workflow = [name for name in _WORKFLOW if name in offer.tools]
    if not workflow:
        return Move(text=f"Final answer: {my_answer}")
    if not offer.results and (call := probe(offer.tools)) is not None:
        return call[0]
    if "new_answer" in workflow and my_answer not in offer.user_text:
        return Move("new_answer", {"content": my_answer})
    if "vote" in workflow and offer.vote_labels:
        return Move("vote", {"agent_id": offer.vote_labels[0], "reason": "it answers the task"})
    return Move("new_answer", {"content": my_answer})


# -- readers -------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """Text of a message content: a string, or a list of text parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(p.get("text", p.get("content", ""))) for p in content
                         if isinstance(p, dict))  # fmt: skip
    return ""


def _bearer(headers: Mapping[str, str]) -> str:
    return headers.get("authorization", "").removeprefix("Bearer ") or headers.get("api-key", "")


def read_chat(headers: Mapping[str, str], body: Mapping[str, Any]) -> Offer:
    """An OpenAI chat-completions request."""
    tools = {
        t["function"]["name"]: t["function"].get("parameters", {}).get("properties", {})
        for t in body.get("tools") or () if t.get("type") == "function"
    }  # fmt: skip
    messages = body.get("messages") or []
    own = tuple(t for t in body.get("tools") or () if t.get("type") != "function")
    # Search on the chat protocol is a body field: OpenRouter's and others', or Qwen's.
    search = tuple({k: body[k]} for k in ("web_search_options", "enable_search") if k in body)
    return Offer(
        key=_bearer(headers),
        tools=tools,
        user_text="\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "user"),
        results=tuple(_text_of(m.get("content")) for m in messages if m.get("role") == "tool"),
        provider_tools=own + search,
        system_text="\n".join(_text_of(m.get("content")) for m in messages
                              if m.get("role") == "system"),
    )  # fmt: skip


def read_anthropic(request: ProviderRequest) -> Offer:
    """An Anthropic Messages request: function tools have an ``input_schema``."""
    body = request.body
    tools = {
        t["name"]: t["input_schema"].get("properties", {})
        for t in body.get("tools") or () if "input_schema" in t
    }  # fmt: skip
    user: list[str] = []
    results: list[str] = []
    for message in body.get("messages") or []:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for block in blocks:
            if block.get("type") == "tool_result":
                results.append(_text_of(block.get("content")))
            elif block.get("type") == "text":
                user.append(str(block.get("text") or ""))
    return Offer(
        key=request.headers.get("x-api-key", ""),
        tools=tools,
        user_text="\n".join(user),
        results=tuple(results),
        provider_tools=tuple(t for t in body.get("tools") or () if "input_schema" not in t),
        system_text=_text_of(body.get("system")),
    )


def read_gemini(request: ProviderRequest) -> Offer:
    """A Gemini generateContent request; function tools as declarations, or as text."""
    body = request.body
    tools: dict[str, Mapping[str, Any]] = {}
    own = []
    for entry in body.get("tools") or ():
        declared = entry.get("function_declarations") or entry.get("functionDeclarations")
        if declared is None:
            own.append(entry)
        for function in declared or ():
            tools[function["name"]] = (function.get("parameters") or {}).get("properties", {})
    system = body.get("system_instruction") or body.get("systemInstruction") or {}
    system_text = _text_of(system.get("parts"))
    as_text = not tools and any(_TEXT_TOOL.match(line) for line in system_text.splitlines())
    for line in system_text.splitlines() if as_text else ():
        if match := _TEXT_TOOL.match(line):
            tools[match.group(1)] = json.loads(match.group(2))
    user: list[str] = []
    results: list[str] = []
    for content in body.get("contents") or []:
        for part in content.get("parts") or []:
            response = part.get("function_response") or part.get("functionResponse")
            if response is not None:
                results.append(json.dumps(response.get("response")))
            elif content.get("role") == "user" and "text" in part:
                written = str(part["text"])
                (results if written.startswith("Result of ") else user).append(written)
    key = request.headers.get("x-goog-api-key") or (request.query.get("key") or [""])[0]
    return Offer(
        key=key, tools=tools, user_text="\n".join(user), results=tuple(results),
        provider_tools=tuple(own), as_text=as_text, system_text=system_text,
    )  # fmt: skip


def read_responses(request: ProviderRequest) -> Offer:
    """An OpenAI (or xAI) Responses API request."""
    body = request.body
    tools = {
        t["name"]: (t.get("parameters") or {}).get("properties", {})
        for t in body.get("tools") or () if t.get("type") == "function"
    }  # fmt: skip
    items = body.get("input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
    return Offer(
        key=_bearer(request.headers),
        tools=tools,
        user_text="\n".join(_text_of(i.get("content")) for i in items if i.get("role") == "user"),
        results=tuple(str(i.get("output")) for i in items
                      if i.get("type") == "function_call_output"),
        provider_tools=tuple(t for t in body.get("tools") or () if t.get("type") != "function"),
        system_text="\n".join([str(body.get("instructions") or "")] + [
            _text_of(i.get("content")) for i in items if i.get("role") in ("system", "developer")
        ]),
    )  # fmt: skip


# -- writers -------------------------------------------------------------------------


def reply_chat(move: Move) -> Step:
    if move.tool is None:
        return text(move.text)
    if move.tool == "new_answer":
        return answer(move.arguments["content"])
    if move.tool == "vote":
        return vote(move.arguments["agent_id"], move.arguments["reason"])
    return tool_call(move.tool, move.arguments)


def reply_anthropic(move: Move) -> Reply:
    if move.tool is None:
        return anthropic.reply(anthropic.text(move.text))
    return anthropic.reply(anthropic.tool_use(move.tool, move.arguments))


def reply_gemini(move: Move, as_text: bool) -> Reply:
    if move.tool is None:
        return gemini.reply(gemini.text(move.text))
    if as_text:
        written = json.dumps({"tool": move.tool, "arguments": move.arguments})
        return gemini.reply(gemini.text(written))
    return gemini.reply(gemini.function_call(move.tool, move.arguments))


def reply_responses(move: Move) -> Reply:
    if move.tool is None:
        return responses.reply(responses.text(move.text))
    return responses.reply(responses.function_call(move.tool, move.arguments))


def chat_behaviour(body: dict[str, Any]) -> Step:
    """The behaviour of the chat fake (``FakeOpenAIServer.behave``)."""
    return reply_chat(decide(read_chat({}, body), ANSWER))


def provider_behaviour(
    read: Callable[[ProviderRequest], Offer],
) -> Callable[[ProviderRequest], Reply]:
    """The behaviour of a non-chat fake (``FakeXServer.behave``) for one protocol."""
    writers: dict[Callable[[ProviderRequest], Offer], Callable[[Move, Offer], Reply]] = {
        read_anthropic: lambda move, _: reply_anthropic(move),
        read_gemini: lambda move, offer: reply_gemini(move, offer.as_text),
        read_responses: lambda move, _: reply_responses(move),
    }
    write = writers[read]

    def behave(request: ProviderRequest) -> Reply:
        offer = read(request)
        return write(decide(offer, ANSWER), offer)

    return behave

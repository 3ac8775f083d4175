"""``tool_choice: "required"`` as text first, then a short grammar-constrained call.

Small models write poor text inside a JSON string: under a tool-call grammar Qwen 0.5B
mangles code (lost fences, nested definitions, example arguments instead of a function)
and, told about JSON tool calls, it writes one at once instead of answering. So a
required call is made in two steps:

1. **text**: the conversation with its tool turns as text and no tool list, no grammar;
   the reply streams out as content. The step ends when the model stops, or as soon as
   it starts writing a call of an offered tool itself (``{"name": "<tool>", "arguments":
   {``, bare or fenced): that text is cut there and generation stops. When no offered
   tool has an optional argument the text could stand for (a vote at the answer cap),
   there is no text step (``wants_text``): small models given room for a preamble
   there copy out an answer they cannot submit, which costs a vote most of its time.
2. **call**: the same conversation, the text (if any) as the assistant's reply, and a
   user note listing the tools; the call is decoded under a JSON-schema grammar. After
   text, or when every argument is required, the call is short: only each tool's
   **required** arguments, strings of at most ``CALL_STRING_CHARS`` characters, at most
   ``CALL_MAX_TOKENS`` tokens. An optional argument the text stands for
   (``new_answer``'s ``content``: "empty = the text before the call") is therefore left
   out, never copied badly. When the model wrote no text but could have, the call has
   the tools' full schemas (the old forced call). A short call of one tool whose
   arguments are all strings starts with its fixed head as the assistant's reply and
   is constrained by a GBNF grammar for the rest (``call_head``); one with nothing
   left to choose is not asked for (the proxy writes it).

The response is the text as ``content`` plus the call as ``tool_calls``. A named
``tool_choice`` keeps the plain forced call (``forced_calls``). Pure helpers, no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

from .call_head import CallHead, call_head
from .calls import JsonObj, parameters
from .tool_prompt import messages_without_tools, tools_note

__all__ = [
    "CALL_MAX_TOKENS",
    "CALL_STRING_CHARS",
    "CallStep",
    "call_request",
    "short_call_tools",
    "text_request",
    "wants_text",
]

CALL_MAX_TOKENS = 256
"""Tokens the call step may generate (a vote's reason fits; a copied answer does not)."""
CALL_STRING_CHARS = 240
"""Characters a string argument of a call after text may have."""
_STRIPPED = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "stream_options")
_AFTER_TEXT = "Now end your reply with exactly one tool call"


def wants_text(tools: list[JsonObj]) -> bool:
    """Whether a required call among ``tools`` gets a text step first: only when some
    tool has an optional argument the text can stand for."""
    return any(_optional(tool) for tool in tools)


def text_request(body: JsonObj) -> JsonObj:
    """The upstream request of the text step (streamed, so it can be cut at a call)."""
    out = {k: v for k, v in body.items() if k not in _STRIPPED}
    out["messages"] = messages_without_tools(body["messages"], None)
    out["stream"] = True
    out["stream_options"] = {"include_usage": True}
    return out


def _optional(tool: JsonObj) -> bool:
    """Whether a tool has an argument the model may leave out."""
    params = parameters(tool)
    return bool(set(params.get("properties") or {}) - set(params.get("required") or []))


def short_call_tools(tools: list[JsonObj]) -> list[JsonObj]:
    """The tools as a call after text may use them: required arguments only, every
    string at most ``CALL_STRING_CHARS`` long (nested schemas are left as they are)."""
    out = []
    for tool in tools:
        params = parameters(tool)
        properties = params.get("properties") or {}
        required = [k for k in params.get("required") or [] if k in properties]
        props = {}
        for key in required:
            schema = copy.deepcopy(properties[key])
            if schema.get("type") == "string" and "enum" not in schema:
                limit = schema.get("maxLength", CALL_STRING_CHARS)
                schema["maxLength"] = min(limit, CALL_STRING_CHARS)
            props[key] = schema
        function = dict(tool.get("function") or {})
        function["parameters"] = {
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": False,
        }
        out.append({**tool, "function": function})
    return out


class CallStep(NamedTuple):
    """The call step's upstream request, the tools it may call, and (for a short call
    of one tool) the head written for the model (``call_head``)."""

    request: JsonObj
    tools: list[JsonObj]
    head: CallHead | None


def call_request(
    body: JsonObj, tools: list[JsonObj], text: str, schema: Callable[[list[JsonObj]], JsonObj]
) -> CallStep:
    """The upstream request of the call step.

    Args:
        body: the client's request.
        tools: the tools the call chooses among.
        text: what the text step wrote (may be empty).
        schema: builds the grammar's JSON schema from tools (``tool_call_schema``).

    Returns:
        After text the tools are ``short_call_tools(tools)``; a short call of one tool
        whose arguments are all strings starts with its head as the assistant's reply
        and is constrained by a GBNF grammar for the rest (``call_head``), any other by
        the tools' JSON schema.
    """
    short = bool(text.strip()) or not wants_text(tools)
    offered = short_call_tools(tools) if short else tools
    messages = messages_without_tools(body["messages"], None)
    if text.strip():
        messages.append({"role": "assistant", "content": text})
    # The note goes last, not into the system message: the prompt read for the text
    # step (and the text itself) stays a cached prefix.
    note = _AFTER_TEXT if text.strip() else "Answer with exactly one tool call"
    messages.append({"role": "user", "content": tools_note(offered, forced=True, head=note)})
    head = call_head(offered) if short else None
    if head is not None:
        messages.append({"role": "assistant", "content": head.prefix})
    out: JsonObj = {k: v for k, v in body.items() if k not in _STRIPPED}
    out["messages"] = messages
    out["stream"] = True
    out["stream_options"] = {"include_usage": True}
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    out["max_tokens"] = CALL_MAX_TOKENS if short or not limit else _as_int(limit)
    out.pop("max_completion_tokens", None)
    if head is not None:
        out["grammar"] = head.grammar
    else:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "tool_call", "schema": schema(offered)},
        }
    return CallStep(out, offered, head)


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return CALL_MAX_TOKENS

"""A short call's fixed start written for the model, and a grammar for the rest.

Under a JSON-schema grammar llama.cpp generates every token of a call one at a time,
the ones the schema fixes too (``{"name": "vote", "arguments": {"agent_id": "``), and
each constrained token cost about twice a free one here when three agents decoded at
once (docs/coordination.md, "Answers as text"). When the call can only
be one tool whose arguments are all strings, that fixed start is sent as the start of
the assistant's reply (llama.cpp continues it, reading it as prompt in one batch) and
a GBNF grammar constrains only the rest: the values, the keys between them, the
closing braces, and no optional whitespace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .calls import JsonObj, parameters, tool_name

__all__ = ["CallHead", "call_head"]

_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
"""One character of a JSON string, as in llama.cpp's JSON-schema grammars."""


@dataclass(frozen=True, slots=True)
class CallHead:
    """How a call is decoded: ``prefix`` is written for the model, ``grammar`` (GBNF)
    constrains what it adds; ``prefix`` plus the generated text is the whole call."""

    prefix: str
    grammar: str
    fixed: bool = False
    """Nothing is left to choose (a tool without arguments): the call is ``prefix``
    plus ``}}``, and the model need not be asked."""

    @property
    def call(self) -> str:
        """The whole call, when ``fixed``."""
        return self.prefix + "}}"


def call_head(tools: list[JsonObj]) -> CallHead | None:
    """The head and grammar of a call of ``tools``, or None when the call is not fixed
    enough: not exactly one tool, or an argument that is not a string (an enum of
    strings counts), or one the model may leave out."""
    if len(tools) != 1:
        return None
    params = parameters(tools[0])
    properties: JsonObj = params.get("properties") or {}
    required = list(params.get("required") or [])
    if set(properties) != set(required) or params.get("additionalProperties") is not False:
        return None
    values = [_value(properties[key]) for key in required]
    if any(value is None for value in values):
        return None
    prefix = f'{{"name": {json.dumps(tool_name(tools[0]))}, "arguments": {{'
    if not required:
        return CallHead(prefix, 'root ::= "}}"', fixed=True)
    prefix += f'{json.dumps(required[0])}: "'
    parts = [str(values[0])]
    for key, value in zip(required[1:], values[1:], strict=True):
        parts += [_literal(f'", {json.dumps(key)}: "'), str(value)]
    parts.append(_literal('"}}'))
    return CallHead(prefix, f"root ::= {' '.join(parts)}\n{_CHAR}")


def _value(schema: JsonObj) -> str | None:
    """The GBNF of a string's characters (without its quotes), or None if not a string."""
    if "enum" in schema:
        options = schema["enum"]
        if not options or not all(isinstance(o, str) for o in options):
            return None
        return "(" + " | ".join(_literal(json.dumps(o)[1:-1]) for o in options) + ")"
    if schema.get("type") != "string" or set(schema) - {
        "type",
        "maxLength",
        "description",
        "title",
    }:
        return None
    limit = schema.get("maxLength")
    return f"char{{0,{int(limit)}}}" if isinstance(limit, int) else "char*"


def _literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'

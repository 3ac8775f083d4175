"""Tools for a chat template that gets none: a compact system note, tool turns as text."""

from __future__ import annotations

import json
from typing import Any

from .calls import JsonObj, parameters

__all__ = ["messages_without_tools", "tools_note"]


def _describe_type(schema: JsonObj) -> str:
    if "enum" in schema:
        return "|".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_describe_type(schema.get('items') or {})}"
    return kind if isinstance(kind, str) else "|".join(kind)


def tools_note(tools: list[JsonObj], *, forced: bool, head: str | None = None) -> str:
    """A compact note listing tools, their descriptions and parameters.

    Kept short on purpose: prompt reading costs ~10 ms per token on two cores.

    Args:
        tools: the offered tools.
        forced: a call is required ("Answer with exactly one tool call") or optional.
        head: the note's first words instead of either.
    """
    lines = []
    for tool in tools:
        fn = tool.get("function", {})
        props = parameters(tool).get("properties") or {}
        args = ", ".join(f"{k}: {_describe_type(v)}" for k, v in props.items())
        desc = (fn.get("description") or "").strip().splitlines()
        lines.append(f"- {fn.get('name')}({args})" + (f": {desc[0]}" if desc else ""))
    head = head or ("Answer with exactly one tool call" if forced else "You may call a tool")
    return (
        f'{head}, written as JSON {{"name": <tool>, "arguments": {{...}}}}. Tools:\n'
        + "\n".join(lines)
    )


def messages_without_tools(messages: list[JsonObj], note: str | None) -> list[JsonObj]:
    """Rewrite a conversation for a template that gets no ``tools``.

    Earlier assistant tool calls become their JSON text and tool results become user
    messages, so any chat template renders them; ``note`` (if any) is appended to the
    first system message (or becomes one), which keeps the prompt prefix stable for
    caching.
    """
    out: list[JsonObj] = []
    for msg in messages:
        role = msg.get("role")
        if role == "assistant" and msg.get("tool_calls"):
            calls = [
                json.dumps(
                    {
                        "name": c.get("function", {}).get("name"),
                        "arguments": _loads_or_text(c.get("function", {}).get("arguments")),
                    }
                )
                for c in msg["tool_calls"]
            ]
            text = "\n".join(filter(None, [_text_of(msg.get("content")), *calls]))
            out.append({"role": "assistant", "content": text})
        elif role == "tool":
            out.append({"role": "user", "content": f"Tool result: {_text_of(msg.get('content'))}"})
        else:
            out.append(dict(msg))
    if note is None:
        for msg in out:
            if msg.get("role") == "developer":
                msg["role"] = "system"
        return out
    for msg in out:
        if msg.get("role") in ("system", "developer"):
            msg["role"] = "system"
            msg["content"] = f"{_text_of(msg.get('content'))}\n\n{note}"
            break
    else:
        out.insert(0, {"role": "system", "content": note})
    return out


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _loads_or_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value

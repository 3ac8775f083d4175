"""OpenAI function-tool JSON, the form every tool is offered in.

``TurnRequest.tools`` and ``ToolList.tools`` carry tools as
``{"type": "function", "function": {"name", "description", "parameters"}}``; a
provider's own tools (``{"type": "web_search"}``) have no function part.
``function_name`` is the one reader of a tool's name, for every service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .json_types import JsonValue, object_of

__all__ = ["function_name", "function_tool"]


def function_tool(
    name: str,
    description: str,
    properties: dict[str, Any],
    required: Sequence[str] | None = None,
    *,
    closed: bool = False,
) -> dict[str, Any]:
    """An OpenAI function tool taking an object of ``properties``: every property is
    required unless ``required`` says; ``closed`` forbids any other property."""
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else list(required),
    }
    if closed:
        parameters["additionalProperties"] = False
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def function_name(tool: Mapping[str, JsonValue]) -> str | None:
    """The name of an OpenAI function tool (None: not a function tool, or no name)."""
    name = object_of(tool.get("function")).get("name")
    return name if isinstance(name, str) and name else None

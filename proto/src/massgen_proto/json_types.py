"""JSON as Python types, for the places where a message's shape is open.

Tool arguments, tool schemas, model conversations in OpenAI chat form and a config as
sent on the wire are JSON whose keys the contract does not fix. ``JsonValue`` says
"any JSON" precisely (no ``Any``): a reader narrows it with ``isinstance`` before use.

The containers in ``JsonValue`` are ``Sequence`` and ``Mapping`` (read-only, so
covariant): a ``list[JsonObject]`` or a ``dict[str, str]`` is a JSON value as it is,
without a copy or a cast. Narrow with ``isinstance(value, Mapping)``, which keeps the
value type (``dict`` does not). ``JsonObject`` is the one to build and change.

These aliases are for type checking; a pydantic model that must validate JSON uses
``pydantic.JsonValue`` (this recursive alias is not one pydantic can build a schema of).
``object_of``, ``items_of`` and ``objects_of`` read a field of an open shape, where a
missing or odd one reads as empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

__all__ = ["JsonObject", "JsonValue", "items_of", "object_of", "objects_of"]

JsonValue: TypeAlias = (
    str | int | float | bool | None | Sequence["JsonValue"] | Mapping[str, "JsonValue"]
)
"""Any JSON value."""

JsonObject: TypeAlias = dict[str, JsonValue]
"""A JSON object being built or changed (a request body, a tool's arguments)."""


def object_of(value: JsonValue) -> Mapping[str, JsonValue]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def items_of(value: JsonValue) -> Sequence[JsonValue]:
    """The items of ``value`` when it is a JSON array, else none."""
    return () if isinstance(value, str) or not isinstance(value, Sequence) else value


def objects_of(value: JsonValue) -> list[Mapping[str, JsonValue]]:
    """The objects among the items of ``value`` when it is a JSON array (else none)."""
    return [item for item in items_of(value) if isinstance(item, Mapping)]

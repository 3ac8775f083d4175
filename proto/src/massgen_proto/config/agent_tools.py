"""The tools an agent may use beyond the workflow ones: MCP servers and custom tools."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import ConfigModel
from .tool_library import (
    SHIPPED_FUNCTIONS,
    Counterpart,
    library_file,
    multimodal_counterpart,
    multimodal_problem,
    shipped_file,
    unshipped_reason,
)

__all__ = ["CustomToolConfig", "McpServerConfig"]

_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class McpServerConfig(ConfigModel):
    """One MCP server an agent may use (brokered by the mcp-gateway)."""

    name: str
    type: Literal["stdio", "streamable-http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    allowed_tools: list[str] | None = None
    exclude_tools: list[str] | None = None
    security: dict[str, Any] | None = None
    """MassGen's per-server security block; kept for compatibility, not interpreted."""

    @field_validator("name")
    @classmethod
    def _name_is_token(cls, value: str) -> str:
        if not _SERVER_NAME.match(value):
            raise ValueError(f"server name {value!r} must match ^[A-Za-z0-9_-]+$")
        return value

    @model_validator(mode="after")
    def _transport_fields(self) -> McpServerConfig:
        # A stdio server without a command names an entry of the deployment's catalog
        # (massgen_proto.catalog); without a catalog the gateway refuses it by name.
        if self.type == "streamable-http" and not self.url:
            raise ValueError("a streamable-http MCP server needs 'url'")
        return self


class CustomToolConfig(ConfigModel):
    """Python functions offered as ``custom_tool__<name>`` (MassGen's ``custom_tools``
    entry). The gateway imports and calls them in its sandbox. ``function``, ``name``,
    ``description`` and ``preset_args`` take one value (shared) or a list (one per
    function).

    Without ``path`` a function is looked up by name in the built-in tool library (as
    MassGen looks it up in its own package); a path into MassGen's library
    (``massgen/tool/...``) is served from the built-in copy when there is one and is
    refused with the reason otherwise (``tool_library``); a function of MassGen's
    multimodal tools maps onto the project's own way of doing it (``counterparts``) or
    is refused. A function the library does not have is left out with a warning, as
    MassGen leaves it out with an error log."""

    function: str | list[str]
    path: str | None = None
    """The Python file (relative: to the folder the gateway runs in); none: a function
    of the built-in tool library."""
    name: str | list[str] | None = None
    description: str | list[str] | None = None
    preset_args: dict[str, Any] | list[dict[str, Any]] | None = None
    """Arguments passed on every call and hidden from the model."""
    category: str | None = None
    """MassGen's grouping; kept for compatibility, not interpreted."""
    default_params: dict[str, Any] | None = None
    """In some of MassGen's examples; MassGen itself never reads it (a warning)."""

    @model_validator(mode="after")
    def _one_entry_per_function(self) -> CustomToolConfig:
        reason = unshipped_reason(self.path)
        if reason:
            raise ValueError(f"custom tool file {self.path!r} is not supported: {reason}")
        functions = self.function if isinstance(self.function, list) else [self.function]
        refused = [
            f"custom tool function {function!r} ({self.path}) is not supported: {why}"
            for function in functions
            if (why := multimodal_problem(self.path, function))
        ]
        if refused:
            raise ValueError("; ".join(refused))
        count = len(functions)
        if count == 0:
            raise ValueError("'function' is an empty list")
        for key in ("name", "description", "preset_args"):
            value = getattr(self, key)
            if isinstance(value, list) and len(value) != count:
                raise ValueError(
                    f"'{key}' lists {len(value)} values for {count} function(s): give one "
                    "value (shared) or one per function"
                )
        for name, _, _, _ in self.entries():
            if not _SERVER_NAME.match(name):
                raise ValueError(f"custom tool name {name!r} must match ^[A-Za-z0-9_-]+$")
        return self

    def library_file(self, function: str) -> str | None:
        """The built-in tool library's file serving ``function`` of this entry (relative
        to the library's folder); None: the entry's own ``path`` is used."""
        return library_file(self.path, function)

    def counterparts(self) -> list[tuple[str, Counterpart]]:
        """``(function, counterpart)`` for each MassGen multimodal function of this entry:
        the agent gets the counterpart's tool instead of a custom tool."""
        functions = self.function if isinstance(self.function, list) else [self.function]
        return [
            (function, counterpart)
            for function in functions
            if (counterpart := multimodal_counterpart(self.path, function))
        ]

    def missing_functions(self) -> list[str]:
        """Functions this entry names that the built-in library was asked for and does
        not have (they are left out of the agent's tools)."""
        functions = self.function if isinstance(self.function, list) else [self.function]
        if self.path is None:
            return [f for f in functions if f not in SHIPPED_FUNCTIONS]
        shipped = shipped_file(self.path)
        if shipped is None:
            return []  # the user's own file: the gateway reports what it lacks
        return [f for f in functions if SHIPPED_FUNCTIONS.get(f) != shipped]

    def warnings(self) -> list[tuple[str, str]]:
        """``(key, why)`` for what this entry names that has no effect."""
        found: list[tuple[str, str]] = []
        for function in self.missing_functions():
            found.append((
                "function",
                f"{function!r} is not in the built-in tool library "
                f"({', '.join(sorted(SHIPPED_FUNCTIONS))}): the agent runs without it, as "
                "MassGen does when it cannot load a custom tool",
            ))  # fmt: skip
        for function, counterpart in self.counterparts():
            found.append((
                "function",
                f"{function!r} (a MassGen multimodal tool) maps onto {counterpart.means}; "
                "no custom tool is offered for it",
            ))  # fmt: skip
        if self.default_params:
            found.append(("default_params", "ignored (MassGen does not read it either)"))
        return found

    def entries(self) -> list[tuple[str, str, str | None, dict[str, Any]]]:
        """``(tool name, function, description, preset_args)`` per function."""
        functions = self.function if isinstance(self.function, list) else [self.function]

        def each(value: Any) -> list[Any]:
            return value if isinstance(value, list) else [value] * len(functions)

        return [
            ((name or function).removeprefix("custom_tool__"), function, description, preset or {})
            for function, name, description, preset in zip(
                functions,
                each(self.name),
                each(self.description),
                each(self.preset_args),
                strict=True,
            )
        ]

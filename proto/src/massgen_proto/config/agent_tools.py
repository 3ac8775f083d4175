"""The tools an agent may use beyond the workflow ones: MCP servers and custom tools."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import ConfigModel

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
    function)."""

    function: str | list[str]
    path: str | None = None
    """The Python file (relative: to the folder the gateway runs in)."""
    name: str | list[str] | None = None
    description: str | list[str] | None = None
    preset_args: dict[str, Any] | list[dict[str, Any]] | None = None
    """Arguments passed on every call and hidden from the model."""
    category: str | None = None
    """MassGen's grouping; kept for compatibility, not interpreted."""

    @model_validator(mode="after")
    def _one_entry_per_function(self) -> CustomToolConfig:
        if not self.path:
            raise ValueError(
                "a custom tool needs 'path' (the Python file that defines the function): "
                "MassGen's own tool library is not part of this project"
            )
        count = len(self.function) if isinstance(self.function, list) else 1
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

"""The path arguments of third-party tools, and the access each needs.

A third-party tool says nothing about which of its arguments are paths, so they are
found by key names and by value shape, and the access is judged by the tool's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from massgen_proto.json_types import JsonObject, JsonValue

from .permissions import Access

__all__ = ["PathRef", "access_for", "path_arguments"]

_PATH_KEY = re.compile(
    r"(^|_)(path|paths|file|files|filename|filenames|filepath|dir|dirs|directory|directories|"
    r"folder|folders|source|sources|destination|dest|dst|src|target|cwd|root)$",
    re.I,
)
_CONTENT_KEYS = frozenset(
    {"content", "contents", "text", "old_text", "new_text", "oldtext", "newtext", "pattern",
     "patterns", "query", "message", "description", "body", "edits", "excludepatterns"}
)  # fmt: skip
_READ_TOOL = re.compile(
    r"^(read|list|get|search|find|stat|view|show|head|tail|cat|ls|tree|directory_tree|describe|"
    r"info|fetch|glob|grep|count|exists)",
    re.I,
)
_DELETE_TOOL = re.compile(r"(delete|remove|unlink|rmdir|trash|^rm_|^rm$)", re.I)
_MOVE_TOOL = re.compile(r"(move|rename|^mv)", re.I)
_MOVE_SOURCE = re.compile(r"^(source|sources|src|from|old_?path|path)$", re.I)


def access_for(tool: str, key: str) -> Access:
    """The access a third-party tool's path argument needs, judged by the tool's name."""
    if _DELETE_TOOL.search(tool):
        return "delete"
    if _MOVE_TOOL.search(tool):
        return "delete" if _MOVE_SOURCE.match(key) else "write"
    if _READ_TOOL.match(tool):
        return "read"
    return "write"


@dataclass(slots=True)
class PathRef:
    """A path argument, and where it sits in the arguments (to put the checked path in
    its place)."""

    container: JsonObject | list[JsonValue]
    key: str | int
    value: str
    access: Access

    def replace(self, value: str) -> None:
        """Put ``value`` where the argument was."""
        if isinstance(self.container, dict):
            self.container[str(self.key)] = value
        else:
            self.container[int(self.key)] = value


def _looks_like_path(value: str) -> bool:
    if value.startswith("file://"):
        return True
    return (value.startswith("/") or value.startswith("~/") or value.startswith("../")) and not any(
        c.isspace() for c in value
    )


def path_arguments(tool: str, arguments: JsonObject) -> list[PathRef]:
    """Every path argument of a third-party call (references into ``arguments``).

    Path arguments are values of path-like keys (``path``, ``paths``, ``source``,
    ``destination``, ``*_path``, ``directory`` ...), at any depth, plus any string
    outside content keys that looks like a path (absolute, ``~/``, ``../`` or
    ``file://``) — a value that might be a path is checked, not trusted.
    """
    found: list[PathRef] = []

    def visit(
        container: JsonObject | list[JsonValue],
        key: str | int,
        value: JsonValue,
        path_key: str | None,
        content: bool,
    ) -> None:
        if isinstance(value, str):
            if path_key is not None or (not content and _looks_like_path(value)):
                found.append(PathRef(container, key, value, access_for(tool, path_key or "")))
        elif isinstance(value, dict):
            visit_object(value, content)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                visit(value, i, v, path_key, content)
        elif (
            path_key is not None and value is not None and not isinstance(value, bool | int | float)
        ):
            found.append(PathRef(container, key, repr(value), access_for(tool, path_key)))

    def visit_object(value: JsonObject, content: bool) -> None:
        for k, v in value.items():
            name = str(k)
            is_path = name if _PATH_KEY.search(name) else None
            visit(value, k, v, is_path, content or name.lower() in _CONTENT_KEYS)

    visit_object(arguments, False)
    return found

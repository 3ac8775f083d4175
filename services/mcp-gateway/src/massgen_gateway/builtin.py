"""Built-in workspace tools, served by the gateway itself (no Node, no MCP server).

This module is their catalog (names, schemas, path arguments) and ``run_builtin``.
The tools are in ``file_tools`` and ``compare``; every path argument has been checked
(``permissions.AgentScope.check``) before a tool runs, and ``fdwalk`` walks it with
``O_NOFOLLOW`` on every component, so a symlink created between the check and the
operation makes the call fail instead of following the link out of the roots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from massgen_proto.json_types import JsonObject

from . import file_tools
from .compare import compare_directories, compare_files
from .fdwalk import SymlinkRace, ToolError
from .permissions import Access, AccessLedger, Decision

__all__ = [
    "BUILTIN_SERVER",
    "BUILTIN_TOOLS",
    "BuiltinTool",
    "PathArg",
    "SymlinkRace",
    "ToolError",
    "run_builtin",
]

BUILTIN_SERVER = "workspace"
"""Server name of the built-in tools: they are offered as ``mcp__workspace__<tool>``."""


@dataclass(frozen=True, slots=True)
class PathArg:
    """A path argument of a built-in tool and the access it needs."""

    name: str
    access: Access
    default: str | None = None


@dataclass(frozen=True, slots=True)
class BuiltinTool:
    """One built-in tool: its schema and its path arguments."""

    name: str
    description: str
    properties: JsonObject
    required: tuple[str, ...]
    paths: tuple[PathArg, ...]

    def input_schema(self) -> JsonObject:
        return {
            "type": "object",
            "properties": self.properties,
            "required": list(self.required),
            "additionalProperties": False,
        }


_PATH = {"type": "string", "description": "Path, relative to your workspace or absolute."}

BUILTIN_TOOLS: dict[str, BuiltinTool] = {
    t.name: t
    for t in (
        BuiltinTool(
            "read_file",
            "Read a text file.",
            {"path": _PATH},
            ("path",),
            (PathArg("path", "read"),),
        ),
        BuiltinTool(
            "write_file",
            "Create or overwrite a text file (parent folders are created).",
            {"path": _PATH, "content": {"type": "string"}},
            ("path", "content"),
            (PathArg("path", "write"),),
        ),
        BuiltinTool(
            "edit_file",
            "Replace exact text in a file: old_text must occur exactly once (or set replace_all).",
            {
                "path": _PATH,
                "old_text": {"type": "string"},
                "new_text": {"type": "string"},
                "replace_all": {"type": "boolean", "default": False},
            },
            ("path", "old_text", "new_text"),
            (PathArg("path", "write"),),
        ),
        BuiltinTool(
            "list_directory",
            "List a folder's entries (default: your workspace).",
            {"path": _PATH},
            (),
            (PathArg("path", "read", "."),),
        ),
        BuiltinTool(
            "create_directory",
            "Create a folder and any missing parents.",
            {"path": _PATH},
            ("path",),
            (PathArg("path", "write"),),
        ),
        BuiltinTool(
            "move",
            "Move or rename a file or folder you have read or created.",
            {"source": _PATH, "destination": _PATH},
            ("source", "destination"),
            (PathArg("source", "delete"), PathArg("destination", "write")),
        ),
        BuiltinTool(
            "copy",
            "Copy a file or folder (symlinks are not copied).",
            {"source": _PATH, "destination": _PATH},
            ("source", "destination"),
            (PathArg("source", "read"), PathArg("destination", "write")),
        ),
        BuiltinTool(
            "delete",
            "Delete a file or folder you have read or created.",
            {"path": _PATH},
            ("path",),
            (PathArg("path", "delete"),),
        ),
        BuiltinTool(
            "compare_files",
            "Compare two text files: a unified diff (empty when identical) and the number of "
            "lines added and removed.",
            {
                "file1": _PATH,
                "file2": _PATH,
                "context_lines": {
                    "type": "integer",
                    "default": 3,
                    "minimum": 0,
                    "description": "Unchanged lines shown around each change.",
                },
            },  # fmt: skip
            ("file1", "file2"),
            (PathArg("file1", "read"), PathArg("file2", "read")),
        ),
        BuiltinTool(
            "compare_directories",
            "Compare two folders recursively: the files only in dir1 (removed), only in dir2 "
            "(added), in both but different (changed), and how many are identical.",
            {
                "dir1": _PATH,
                "dir2": _PATH,
                "show_content_diff": {
                    "type": "boolean",
                    "default": False,
                    "description": "Add a unified diff of each changed text file.",
                },
            },  # fmt: skip
            ("dir1", "dir2"),
            (PathArg("dir1", "read"), PathArg("dir2", "read")),
        ),
        BuiltinTool(
            "search_files",
            "Search file names and contents under a folder for a regular expression.",
            {
                "path": _PATH,
                "pattern": {"type": "string", "description": "Python regular expression."},
                "glob": {"type": "string", "description": "Only files whose name matches."},
            },
            ("pattern",),
            (PathArg("path", "read", "."),),
        ),
    )
}


_RUNNERS: dict[str, Callable[[dict[str, Decision], JsonObject, AccessLedger], str]] = {
    "read_file": file_tools.read_file,
    "write_file": file_tools.write_file,
    "edit_file": file_tools.edit_file,
    "list_directory": file_tools.list_directory,
    "create_directory": file_tools.create_directory,
    "move": file_tools.move,
    "copy": file_tools.copy,
    "delete": file_tools.delete,
    "search_files": file_tools.search_files,
    "compare_files": compare_files,
    "compare_directories": compare_directories,
}


def run_builtin(
    tool: str, decisions: dict[str, Decision], args: JsonObject, ledger: AccessLedger
) -> str:
    """Run built-in ``tool`` on already-allowed paths.

    Raises:
        ToolError: the operation failed (message for the model).
        SymlinkRace: a symlink appeared on a path after its check.
    """
    try:
        return _RUNNERS[tool](decisions, args, ledger)
    except (ToolError, SymlinkRace):
        raise
    except OSError as error:
        raise ToolError(f"{tool} failed: {error.strerror or error}") from None

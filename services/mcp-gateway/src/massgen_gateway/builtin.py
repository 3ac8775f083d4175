"""Built-in workspace tools, served by the gateway itself (no Node, no MCP server).

Every path argument has been checked (``permissions.AgentScope.check``) before a tool
runs. The tools then walk from the root with ``O_NOFOLLOW`` on every component, so a
symlink created between the check and the operation makes the call fail instead of
following the link out of the roots.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

MAX_READ_BYTES = 1_000_000
MAX_MATCHES = 100

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ToolError(Exception):
    """The tool failed in a way the model should read (not found, not a folder ...)."""


class SymlinkRace(Exception):
    """A symlink appeared on a checked path; ``decision`` is the check it defeated."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.path)


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
    properties: dict[str, Any]
    required: tuple[str, ...]
    paths: tuple[PathArg, ...]

    def input_schema(self) -> dict[str, Any]:
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


# -- walking with O_NOFOLLOW ---------------------------------------------------------


def _parts(decision: Decision) -> tuple[str, list[str]]:
    root = decision.root
    assert root is not None
    if root.is_file:
        return os.path.dirname(root.path), [os.path.basename(root.path)]
    rel = decision.path[len(root.path) :].lstrip("/")
    return root.path, rel.split("/") if rel else []


def _race_or(decision: Decision, fd: int, name: str, error: OSError) -> Exception:
    try:
        if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
            return SymlinkRace(decision)
    except OSError:
        pass
    if error.errno == errno.ELOOP:
        return SymlinkRace(decision)
    return ToolError(f"{decision.raw}: {error.strerror}")


def _open_parent(
    decision: Decision, create: bool = False, created: list[str] | None = None
) -> tuple[int, str | None]:
    """(fd of the parent folder, last name) of a checked path; name None = the root."""
    base, parts = _parts(decision)
    fd = os.open(base, _DIR_FLAGS)
    current = base
    try:
        for comp in parts[:-1]:
            current = f"{current}/{comp}"
            try:
                next_fd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise ToolError(f"{decision.raw}: no such folder {current}") from None
                os.mkdir(comp, 0o755, dir_fd=fd)
                if created is not None:
                    created.append(current)
                next_fd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                raise _race_or(decision, fd, comp, error) from None
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd, (parts[-1] if parts else None)


def _open_file(decision: Decision, flags: int, dir_fd: int, name: str) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ToolError(f"{decision.raw}: no such file") from None
    except IsADirectoryError:
        raise ToolError(f"{decision.raw}: is a folder") from None
    except OSError as error:
        raise _race_or(decision, dir_fd, name, error) from None


def _open_dir(decision: Decision) -> int:
    parent, name = _open_parent(decision)
    if name is None:
        return parent
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise ToolError(f"{decision.raw}: no such folder") from None
    except NotADirectoryError as error:
        raise _race_or(decision, parent, name, error) from None
    except OSError as error:
        raise _race_or(decision, parent, name, error) from None
    finally:
        os.close(parent)


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _read_fd(fd: int, limit: int = MAX_READ_BYTES) -> bytes:
    chunks, size = [], 0
    while size < limit:
        data = os.read(fd, min(65536, limit - size))
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- the tools -----------------------------------------------------------------------


def _read_file(d: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger) -> str:
    decision = d["path"]
    parent, name = _open_parent(decision)
    try:
        if name is None:
            raise ToolError(f"{decision.raw}: is a folder")
        fd = _open_file(decision, os.O_RDONLY, parent, name)
    finally:
        os.close(parent)
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise ToolError(f"{decision.raw}: is a folder")
        data = _read_fd(fd, MAX_READ_BYTES + 1)
    finally:
        os.close(fd)
    ledger.record_read(decision.path)
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    if len(data) > MAX_READ_BYTES:
        text += f"\n[truncated at {MAX_READ_BYTES} bytes]"
    return text


def _write(decision: Decision, content: bytes, ledger: AccessLedger) -> bool:
    created: list[str] = []
    parent, name = _open_parent(decision, create=True, created=created)
    try:
        if name is None:
            raise ToolError(f"{decision.raw}: is a folder")
        existed = _lexists(parent, name)
        fd = _open_file(decision, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, parent, name)
    finally:
        os.close(parent)
    try:
        _write_fd(fd, content)
    finally:
        os.close(fd)
    for path in created:
        ledger.record_created(path)
    if not existed:
        ledger.record_created(decision.path)
    return existed


def _write_file(d: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger) -> str:
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolError("'content' must be a string")
    existed = _write(d["path"], content.encode("utf-8"), ledger)
    verb = "overwrote" if existed else "created"
    return f"{verb} {d['path'].path} ({len(content.encode('utf-8'))} bytes)"


def _edit_file(d: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger) -> str:
    old, new = args.get("old_text"), args.get("new_text")
    if not isinstance(old, str) or not isinstance(new, str) or not old:
        raise ToolError("'old_text' (non-empty) and 'new_text' must be strings")
    text = _read_file(d, args, ledger)
    count = text.count(old)
    if count == 0:
        raise ToolError(f"{d['path'].raw}: old_text not found")
    if count > 1 and not args.get("replace_all"):
        raise ToolError(
            f"{d['path'].raw}: old_text occurs {count} times; set replace_all or add context"
        )
    _write(d["path"], text.replace(old, new).encode("utf-8"), ledger)
    return f"edited {d['path'].path} ({count} replacement{'s' if count > 1 else ''})"


def _list_directory(d: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger) -> str:
    decision = d["path"]
    fd = _open_dir(decision)
    try:
        lines = []
        with os.scandir(fd) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_symlink():
                    lines.append(f"[LINK] {entry.name}")
                elif entry.is_dir(follow_symlinks=False):
                    lines.append(f"[DIR] {entry.name}/")
                else:
                    size = entry.stat(follow_symlinks=False).st_size
                    lines.append(f"[FILE] {entry.name} ({size} bytes)")
    finally:
        os.close(fd)
    ledger.record_read(decision.path)
    return f"{decision.path}:\n" + ("\n".join(lines) if lines else "(empty)")


def _create_directory(d: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger) -> str:
    decision = d["path"]
    created: list[str] = []
    parent, name = _open_parent(decision, create=True, created=created)
    try:
        if name is not None and not _lexists(parent, name):
            os.mkdir(name, 0o755, dir_fd=parent)
            created.append(decision.path)
    finally:
        os.close(parent)
    for path in created:
        ledger.record_created(path)
    return f"created {decision.path}" if created else f"{decision.path} already exists"


def _move(d: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger) -> str:
    source, target = d["source"], d["destination"]
    sparent, sname = _open_parent(source)
    try:
        tparent, tname = _open_parent(target, create=True)
        try:
            if sname is None or tname is None:
                raise ToolError("a root folder cannot be moved or replaced")
            if not _lexists(sparent, sname):
                raise ToolError(f"{source.raw}: no such file or folder")
            if _lexists(tparent, tname):
                raise ToolError(f"{target.raw}: already exists")
            os.rename(sname, tname, src_dir_fd=sparent, dst_dir_fd=tparent)
        finally:
            os.close(tparent)
    finally:
        os.close(sparent)
    ledger.record_created(target.path)
    return f"moved {source.path} to {target.path}"


def _copy_fd_tree(src_fd: int, dst_fd: int) -> int:
    copied = 0
    with os.scandir(src_fd) as entries:
        items = list(entries)
    for entry in items:
        if entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            os.mkdir(entry.name, 0o755, dir_fd=dst_fd)
            s = os.open(entry.name, _DIR_FLAGS, dir_fd=src_fd)
            t = os.open(entry.name, _DIR_FLAGS, dir_fd=dst_fd)
            try:
                copied += _copy_fd_tree(s, t)
            finally:
                os.close(s)
                os.close(t)
        elif entry.is_file(follow_symlinks=False):
            s = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
            try:
                t = os.open(
                    entry.name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                    0o644,
                    dir_fd=dst_fd,
                )
                try:
                    _copy_data(s, t)
                finally:
                    os.close(t)
            finally:
                os.close(s)
            copied += 1
    return copied


def _copy_data(src: int, dst: int) -> None:
    while data := os.read(src, 1 << 20):
        _write_fd(dst, data)


def _copy(d: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger) -> str:
    source, target = d["source"], d["destination"]
    sparent, sname = _open_parent(source)
    try:
        tparent, tname = _open_parent(target, create=True)
        try:
            if tname is None:
                raise ToolError("a root folder cannot be replaced")
            if _lexists(tparent, tname):
                raise ToolError(f"{target.raw}: already exists")
            if sname is None:
                src_fd = os.open(".", _DIR_FLAGS, dir_fd=sparent)
            else:
                src_fd = _open_file(source, os.O_RDONLY, sparent, sname)
            try:
                if stat.S_ISDIR(os.fstat(src_fd).st_mode):
                    os.mkdir(tname, 0o755, dir_fd=tparent)
                    dst_fd = os.open(tname, _DIR_FLAGS, dir_fd=tparent)
                    try:
                        count = _copy_fd_tree(src_fd, dst_fd)
                    finally:
                        os.close(dst_fd)
                    what = f"{count} file(s)"
                else:
                    dst_fd = os.open(
                        tname,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                        0o644,
                        dir_fd=tparent,
                    )
                    try:
                        _copy_data(src_fd, dst_fd)
                    finally:
                        os.close(dst_fd)
                    what = "1 file"
            finally:
                os.close(src_fd)
        finally:
            os.close(tparent)
    finally:
        os.close(sparent)
    ledger.record_read(source.path)
    ledger.record_created(target.path)
    return f"copied {what} from {source.path} to {target.path}"


def _delete(d: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger) -> str:
    decision = d["path"]
    parent, name = _open_parent(decision)
    try:
        if name is None:
            raise ToolError("a root folder cannot be deleted")
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except FileNotFoundError:
            raise ToolError(f"{decision.raw}: no such file or folder") from None
        if stat.S_ISDIR(mode):
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)
    finally:
        os.close(parent)
    return f"deleted {decision.path}"


def _search_files(d: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger) -> str:
    decision = d["path"]
    try:
        pattern = re.compile(str(args.get("pattern", "")))
    except re.error as error:
        raise ToolError(f"bad pattern: {error}") from None
    glob = args.get("glob")
    top = _open_dir(decision)
    matches: list[str] = []
    try:
        for dirpath, dirnames, filenames, dir_fd in os.fwalk(
            ".", dir_fd=top, follow_symlinks=False
        ):
            dirnames.sort()
            rel_dir = "" if dirpath == "." else dirpath[2:] + "/"
            for filename in sorted(filenames):
                if glob and not fnmatch.fnmatch(filename, str(glob)):
                    continue
                rel = rel_dir + filename
                if pattern.search(filename):
                    matches.append(f"{rel} (name)")
                try:
                    fd = os.open(
                        filename, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
                    )
                except OSError:
                    continue  # a symlink or a file that went away
                try:
                    data = _read_fd(fd)
                finally:
                    os.close(fd)
                if b"\x00" in data[:8192]:
                    continue
                for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                    if pattern.search(line):
                        matches.append(f"{rel}:{number}: {line.strip()[:200]}")
                        if len(matches) >= MAX_MATCHES:
                            break
                if len(matches) >= MAX_MATCHES:
                    break
            if len(matches) >= MAX_MATCHES:
                break
    finally:
        os.close(top)
    ledger.record_read(decision.path)
    head = f"{len(matches)} match(es) under {decision.path}"
    if len(matches) >= MAX_MATCHES:
        head += f" (first {MAX_MATCHES})"
    return head + (":\n" + "\n".join(matches) if matches else "")


_RUNNERS: dict[str, Callable[[dict[str, Decision], dict[str, Any], AccessLedger], str]] = {
    "read_file": _read_file,
    "write_file": _write_file,
    "edit_file": _edit_file,
    "list_directory": _list_directory,
    "create_directory": _create_directory,
    "move": _move,
    "copy": _copy,
    "delete": _delete,
    "search_files": _search_files,
}


def run_builtin(
    tool: str, decisions: dict[str, Decision], args: dict[str, Any], ledger: AccessLedger
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

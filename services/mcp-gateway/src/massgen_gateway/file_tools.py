"""The built-in file tools: read, write, edit, list, create, move, copy, delete, search.

Each runs on paths already checked, walking them with ``fdwalk`` (``O_NOFOLLOW``).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import stat

from massgen_proto.json_types import JsonObject

from .fdwalk import (
    DIR_FLAGS,
    MAX_READ_BYTES,
    ToolError,
    lexists,
    open_dir,
    open_file,
    open_parent,
    read_checked,
    read_fd,
    write_fd,
)
from .permissions import AccessLedger, Decision

__all__ = [
    "copy",
    "create_directory",
    "delete",
    "edit_file",
    "list_directory",
    "move",
    "read_file",
    "search_files",
    "write_file",
]

MAX_MATCHES = 100


def read_file(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    decision = d["path"]
    data = read_checked(decision)
    ledger.record_read(decision.path)
    text = data[:MAX_READ_BYTES].decode("utf-8", errors="replace")
    if len(data) > MAX_READ_BYTES:
        text += f"\n[truncated at {MAX_READ_BYTES} bytes]"
    return text


def _write(decision: Decision, content: bytes, ledger: AccessLedger) -> bool:
    created: list[str] = []
    parent, name = open_parent(decision, create=True, created=created)
    try:
        if name is None:
            raise ToolError(f"{decision.raw}: is a folder")
        existed = lexists(parent, name)
        fd = open_file(decision, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, parent, name)
    finally:
        os.close(parent)
    try:
        write_fd(fd, content)
    finally:
        os.close(fd)
    for path in created:
        ledger.record_created(path)
    if not existed:
        ledger.record_created(decision.path)
    return existed


def write_file(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolError("'content' must be a string")
    existed = _write(d["path"], content.encode("utf-8"), ledger)
    verb = "overwrote" if existed else "created"
    return f"{verb} {d['path'].path} ({len(content.encode('utf-8'))} bytes)"


def edit_file(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    old, new = args.get("old_text"), args.get("new_text")
    if not isinstance(old, str) or not isinstance(new, str) or not old:
        raise ToolError("'old_text' (non-empty) and 'new_text' must be strings")
    text = read_file(d, args, ledger)
    count = text.count(old)
    if count == 0:
        raise ToolError(f"{d['path'].raw}: old_text not found")
    if count > 1 and not args.get("replace_all"):
        raise ToolError(
            f"{d['path'].raw}: old_text occurs {count} times; set replace_all or add context"
        )
    _write(d["path"], text.replace(old, new).encode("utf-8"), ledger)
    return f"edited {d['path'].path} ({count} replacement{'s' if count > 1 else ''})"


def list_directory(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    decision = d["path"]
    fd = open_dir(decision)
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


def create_directory(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    decision = d["path"]
    created: list[str] = []
    parent, name = open_parent(decision, create=True, created=created)
    try:
        if name is not None and not lexists(parent, name):
            os.mkdir(name, 0o755, dir_fd=parent)
            created.append(decision.path)
    finally:
        os.close(parent)
    for path in created:
        ledger.record_created(path)
    return f"created {decision.path}" if created else f"{decision.path} already exists"


def move(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    source, target = d["source"], d["destination"]
    sparent, sname = open_parent(source)
    try:
        tparent, tname = open_parent(target, create=True)
        try:
            if sname is None or tname is None:
                raise ToolError("a root folder cannot be moved or replaced")
            if not lexists(sparent, sname):
                raise ToolError(f"{source.raw}: no such file or folder")
            if lexists(tparent, tname):
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
            s = os.open(entry.name, DIR_FLAGS, dir_fd=src_fd)
            t = os.open(entry.name, DIR_FLAGS, dir_fd=dst_fd)
            try:
                copied += _copy_fd_tree(s, t)
            finally:
                os.close(s)
                os.close(t)
        elif entry.is_file(follow_symlinks=False):
            s = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
            try:
                _copy_file_to(s, dst_fd, entry.name)
            finally:
                os.close(s)
            copied += 1
    return copied


def _copy_file_to(src: int, dir_fd: int, name: str) -> None:
    """The data of the open file ``src`` into a new file ``name`` of ``dir_fd`` (never into
    one that exists, nor through a symlink)."""
    dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    try:
        while data := os.read(src, 1 << 20):
            write_fd(dst, data)
    finally:
        os.close(dst)


def copy(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    source, target = d["source"], d["destination"]
    sparent, sname = open_parent(source)
    try:
        tparent, tname = open_parent(target, create=True)
        try:
            if tname is None:
                raise ToolError("a root folder cannot be replaced")
            if lexists(tparent, tname):
                raise ToolError(f"{target.raw}: already exists")
            if sname is None:
                src_fd = os.open(".", DIR_FLAGS, dir_fd=sparent)
            else:
                src_fd = open_file(source, os.O_RDONLY, sparent, sname)
            try:
                if stat.S_ISDIR(os.fstat(src_fd).st_mode):
                    os.mkdir(tname, 0o755, dir_fd=tparent)
                    dst_fd = os.open(tname, DIR_FLAGS, dir_fd=tparent)
                    try:
                        count = _copy_fd_tree(src_fd, dst_fd)
                    finally:
                        os.close(dst_fd)
                    what = f"{count} file(s)"
                else:
                    _copy_file_to(src_fd, tparent, tname)
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


def delete(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    decision = d["path"]
    parent, name = open_parent(decision)
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


def search_files(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    decision = d["path"]
    try:
        pattern = re.compile(str(args.get("pattern", "")))
    except re.error as error:
        raise ToolError(f"bad pattern: {error}") from None
    glob = args.get("glob")
    top = open_dir(decision)
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
                    data = read_fd(fd)
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

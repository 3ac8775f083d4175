"""The built-in comparison tools: two text files, or two folders recursively."""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
from dataclasses import dataclass

from massgen_proto.json_types import JsonObject

from .fdwalk import DIR_FLAGS, MAX_READ_BYTES, ToolError, open_dir, read_checked, read_fd
from .permissions import AccessLedger, Decision

__all__ = ["compare_directories", "compare_files"]

MAX_DIFF_LINES = 500
"""Lines of one unified diff returned (the rest is counted)."""
MAX_LISTED = 300
"""Entries of each list (added, removed, changed) in a folder comparison."""
MAX_COMPARED_BYTES = 200_000_000
"""Bytes a folder comparison reads before it stops (and says so)."""


def _read_checked(decision: Decision) -> bytes:
    data = read_checked(decision, regular_only=True)
    if len(data) > MAX_READ_BYTES:
        raise ToolError(f"{decision.raw}: larger than {MAX_READ_BYTES} bytes; compare parts")
    return data


def _is_binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


def _unified(a: bytes, b: bytes, name_a: str, name_b: str, context: int, limit: int) -> list[str]:
    lines = list(
        difflib.unified_diff(
            a.decode("utf-8", "replace").splitlines(),
            b.decode("utf-8", "replace").splitlines(),
            fromfile=name_a, tofile=name_b, lineterm="", n=context,
        )
    )  # fmt: skip
    if len(lines) > limit:
        lines = lines[:limit] + [f"[... {len(lines) - limit} more diff lines]"]
    return lines


def compare_files(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    one, two = d["file1"], d["file2"]
    context = args.get("context_lines", 3)
    if not isinstance(context, int) or isinstance(context, bool) or not 0 <= context <= 100:
        raise ToolError("'context_lines' must be an integer from 0 to 100")
    a, b = _read_checked(one), _read_checked(two)
    ledger.record_read(one.path)
    ledger.record_read(two.path)
    if a == b:
        return f"identical: {one.path} and {two.path} ({len(a)} bytes)"
    if _is_binary(a) or _is_binary(b):
        return f"binary files differ: {one.path} ({len(a)} bytes), {two.path} ({len(b)} bytes)"
    lines = _unified(a, b, one.path, two.path, context, MAX_DIFF_LINES)
    added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    return f"{added} line(s) added, {removed} removed\n" + "\n".join(lines)


@dataclass(slots=True)
class _Entry:
    kind: str
    """``file``, ``dir``, ``link`` or ``other``."""
    digest: str = ""
    size: int = 0


def _tree(decision: Decision, budget: list[int]) -> dict[str, _Entry]:
    """Every entry under a checked folder, by relative path (symlinks not followed)."""
    top = open_dir(decision)
    entries: dict[str, _Entry] = {}
    try:
        for dirpath, dirnames, filenames, dir_fd in os.fwalk(
            ".", dir_fd=top, follow_symlinks=False
        ):
            rel_dir = "" if dirpath == "." else dirpath[2:] + "/"
            for name in [*dirnames, *filenames]:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    entries[rel_dir + name] = _Entry("dir")
                elif stat.S_ISLNK(info.st_mode):
                    target = os.readlink(name, dir_fd=dir_fd)
                    entries[rel_dir + name] = _Entry("link", hashlib.sha256(
                        target.encode("utf-8", "surrogateescape")).hexdigest())  # fmt: skip
                elif stat.S_ISREG(info.st_mode):
                    entries[rel_dir + name] = _Entry("file", _digest(dir_fd, name, budget),
                                                     info.st_size)  # fmt: skip
                else:
                    entries[rel_dir + name] = _Entry("other")
    finally:
        os.close(top)
    return entries


def _digest(dir_fd: int, name: str, budget: list[int]) -> str:
    if budget[0] <= 0:
        return "?"
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return "?"
    digest = hashlib.sha256()
    try:
        while data := os.read(fd, 1 << 20):
            budget[0] -= len(data)
            digest.update(data)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _open_relative(decision: Decision, rel: str) -> bytes | None:
    """Contents of ``rel`` under a checked folder, every component opened O_NOFOLLOW."""
    fd = open_dir(decision)
    try:
        *folders, name = rel.split("/")
        for folder in folders:
            next_fd = os.open(folder, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return read_fd(file_fd)
    finally:
        os.close(file_fd)


def compare_directories(d: dict[str, Decision], args: JsonObject, ledger: AccessLedger) -> str:
    one, two = d["dir1"], d["dir2"]
    budget = [MAX_COMPARED_BYTES]
    left, right = _tree(one, budget), _tree(two, budget)
    ledger.record_read(one.path)
    ledger.record_read(two.path)
    removed = sorted(set(left) - set(right))
    added = sorted(set(right) - set(left))
    common = sorted(set(left) & set(right))
    changed = [
        p for p in common
        if (left[p].kind, left[p].digest) != (right[p].kind, right[p].digest)
        or left[p].digest == "?"
    ]  # fmt: skip
    same = sum(1 for p in common if left[p].kind == "file" and p not in changed)

    def listing(title: str, mark: str, paths: list[str], side: dict[str, _Entry]) -> list[str]:
        lines = [f"{title}: {len(paths)}"]
        for path in paths[:MAX_LISTED]:
            kind = side[path].kind
            lines.append(f"  {mark} {path}{'/' if kind == 'dir' else ''}"
                         + (f" ({kind})" if kind in ("link", "other") else ""))  # fmt: skip
        if len(paths) > MAX_LISTED:
            lines.append(f"  [... {len(paths) - MAX_LISTED} more]")
        return lines

    out = [f"dir1: {one.path}", f"dir2: {two.path}"]
    out += listing("added (only in dir2)", "+", added, right)
    out += listing("removed (only in dir1)", "-", removed, left)
    out += listing("changed", "~", changed, right)
    out.append(f"identical files: {same}")
    if budget[0] <= 0:
        out.append(f"[stopped reading after {MAX_COMPARED_BYTES} bytes: files marked changed "
                   "past that point were not compared]")  # fmt: skip
    if args.get("show_content_diff"):
        for path in changed[:50]:
            if left[path].kind != "file" or right[path].kind != "file":
                continue
            a, b = _open_relative(one, path), _open_relative(two, path)
            if a is None or b is None:
                continue
            if _is_binary(a) or _is_binary(b):
                out.append(f"--- {path}: binary files differ")
                continue
            out += _unified(a, b, f"dir1/{path}", f"dir2/{path}", 3, 100)
    return "\n".join(out)

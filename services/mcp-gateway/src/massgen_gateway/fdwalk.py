"""Walking checked paths with ``O_NOFOLLOW`` on every component, for the built-in tools.

Every path argument has been checked (``permissions.AgentScope.check``) before a tool
runs. The walk then goes from the root with ``O_NOFOLLOW`` on every component, so a
symlink created between the check and the operation makes the call fail instead of
following the link out of the roots.
"""

from __future__ import annotations

import errno
import os
import stat

from .permissions import Decision

__all__ = [
    "DIR_FLAGS",
    "MAX_READ_BYTES",
    "SymlinkRace",
    "ToolError",
    "lexists",
    "open_dir",
    "open_file",
    "open_parent",
    "read_checked",
    "read_fd",
    "write_fd",
]

MAX_READ_BYTES = 1_000_000

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ToolError(Exception):
    """The tool failed in a way the model should read (not found, not a folder ...)."""


class SymlinkRace(Exception):
    """A symlink appeared on a checked path; ``decision`` is the check it defeated."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.path)


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


def open_parent(
    decision: Decision, create: bool = False, created: list[str] | None = None
) -> tuple[int, str | None]:
    """(fd of the parent folder, last name) of a checked path; name None = the root."""
    base, parts = _parts(decision)
    fd = os.open(base, DIR_FLAGS)
    current = base
    try:
        for comp in parts[:-1]:
            current = f"{current}/{comp}"
            try:
                next_fd = os.open(comp, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise ToolError(f"{decision.raw}: no such folder {current}") from None
                os.mkdir(comp, 0o755, dir_fd=fd)
                if created is not None:
                    created.append(current)
                next_fd = os.open(comp, DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                raise _race_or(decision, fd, comp, error) from None
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd, (parts[-1] if parts else None)


def open_file(decision: Decision, flags: int, dir_fd: int, name: str) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ToolError(f"{decision.raw}: no such file") from None
    except IsADirectoryError:
        raise ToolError(f"{decision.raw}: is a folder") from None
    except OSError as error:
        raise _race_or(decision, dir_fd, name, error) from None


def open_dir(decision: Decision) -> int:
    parent, name = open_parent(decision)
    if name is None:
        return parent
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        raise ToolError(f"{decision.raw}: no such folder") from None
    except NotADirectoryError as error:
        raise _race_or(decision, parent, name, error) from None
    except OSError as error:
        raise _race_or(decision, parent, name, error) from None
    finally:
        os.close(parent)


def lexists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def read_fd(fd: int, limit: int = MAX_READ_BYTES) -> bytes:
    chunks, size = [], 0
    while size < limit:
        data = os.read(fd, min(65536, limit - size))
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def read_checked(decision: Decision, *, regular_only: bool = False) -> bytes:
    """The file at a checked path, up to ``MAX_READ_BYTES + 1`` bytes: one byte more than
    a tool returns, so the caller can tell a larger file.

    Raises:
        ToolError: the path is a folder, does not exist, or with ``regular_only`` is no
            regular file (a device, a pipe).
    """
    parent, name = open_parent(decision)
    try:
        if name is None:
            raise ToolError(f"{decision.raw}: is a folder")
        fd = open_file(decision, os.O_RDONLY, parent, name)
    finally:
        os.close(parent)
    try:
        mode = os.fstat(fd).st_mode
        if regular_only and not stat.S_ISREG(mode):
            raise ToolError(f"{decision.raw}: not a regular file")
        if stat.S_ISDIR(mode):
            raise ToolError(f"{decision.raw}: is a folder")
        return read_fd(fd, MAX_READ_BYTES + 1)
    finally:
        os.close(fd)


def write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

"""Where the warm stack's state lives, and what it says about the stack.

The state file, the daemon's lock and whether the processes it names are alive: what
every other part of :mod:`massgen_cli.warm` reads before acting.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "RETRY_AFTER_FAILURE",
    "condition",
    "daemon_running",
    "forget",
    "lapsed",
    "lock_file",
    "pid_alive",
    "read_state",
    "state_dir",
    "state_file",
]

RETRY_AFTER_FAILURE = 600.0
"""After a background stack failed to start, commands do not start another for this long."""


def state_dir() -> Path:
    """Folder of the state file, the lock and the stack's logs."""
    if os.environ.get("MASSGEN_RUNTIME_DIR"):
        return Path(os.environ["MASSGEN_RUNTIME_DIR"])
    return Path.home() / ".massgen"


def state_file() -> Path:
    """``stack.json`` in :func:`state_dir`."""
    return state_dir() / "stack.json"


def lock_file() -> Path:
    """``stack.lock`` in :func:`state_dir`: held by the running daemon."""
    return state_dir() / "stack.lock"


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_state(path: Path | None = None) -> dict[str, Any] | None:
    """The state file's content, or None when there is none (or it is unreadable)."""
    path = path or state_file()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def daemon_running() -> bool:
    """True while a daemon holds ``stack.lock`` (starting, running, or stopping).

    The lock dies with its holder, so unlike a process id this cannot be fooled by a
    ``kill -9`` or a reused pid. A shared lock is enough to test: probing commands do
    not block each other (and a daemon retries for a while to get its exclusive lock).
    """
    try:
        fd = os.open(lock_file(), os.O_RDONLY)
    except OSError:  # no lock file: no daemon ever ran here
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock too
    return False


def lapsed(state: Mapping[str, Any]) -> bool:
    """A failed start long enough ago that another may be tried."""
    return time.time() - float(state.get("failed_at") or 0) > RETRY_AFTER_FAILURE


def condition(state: Mapping[str, Any]) -> str:
    """What the stack of this state is doing.

    ``ready``; ``starting``; ``stopping``; ``broken`` (a process of it died: its daemon
    notices and stops); ``failed`` (it exited at start, saying why); ``dead`` (its
    daemon is gone without cleaning up: ``kill -9``); ``legacy`` (a daemon of an older
    version, which took no lock, still runs).
    """
    running = daemon_running()
    if not running:
        if state.get("error"):
            return "failed"
        if "fingerprint" not in state and pid_alive(int(state.get("pid") or 0)):
            return "legacy"  # a daemon of an older version (no lock): stop it properly
        return "dead"
    if state.get("stopping"):
        return "stopping"
    if not state.get("ready") or not state.get("nats_url"):
        return "failed" if state.get("error") else "starting"
    pids = state.get("pids") or {}
    if not all(pid_alive(int(pid)) for pid in pids.values()):
        return "broken"
    return "ready"


def forget(pid: int) -> None:
    """Remove the state file if it still describes the daemon ``pid``."""
    current = read_state()
    if current is not None and int(current.get("pid") or 0) == pid:
        state_file().unlink(missing_ok=True)

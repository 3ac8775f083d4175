"""Starting the warm-stack daemon in the background, and stopping what is left of one.

The daemon is ``python -m massgen_cli.stackd`` in a session of its own; stopping it
is SIGTERM to it (it stops the rest in order), and SIGKILL for whatever outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .state import (
    daemon_running,
    forget,
    lapsed,
    pid_alive,
    read_state,
    state_dir,
    state_file,
)

__all__ = [
    "DEFAULT_IDLE_SECONDS",
    "Say",
    "clean_stale",
    "daemon_args",
    "duration",
    "idle_seconds",
    "may_spawn",
    "quiet",
    "spawn",
    "spawn_background",
    "spawn_note",
    "stop_daemon",
]

DEFAULT_IDLE_SECONDS = 900.0
"""How long a stack started on first use waits unused before it stops."""

Say = Callable[[str], None]


def quiet(_text: str) -> None:
    """A ``say`` that tells nobody."""


def duration(seconds: float) -> str:
    """``45 s`` or ``15 min``: how long, for a person."""
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def idle_seconds(env: Mapping[str, str] | None = None) -> float:
    """``$MASSGEN_DAEMON_IDLE`` (seconds, > 0), else :data:`DEFAULT_IDLE_SECONDS`."""
    value = (os.environ if env is None else env).get("MASSGEN_DAEMON_IDLE", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_IDLE_SECONDS
    return seconds if seconds > 0 else DEFAULT_IDLE_SECONDS


def spawn(args: list[str], directory: Path) -> subprocess.Popen:
    """Start the daemon detached, its output appended to ``stackd.log`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    log = (directory / "stackd.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "massgen_cli.stackd", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # detached: the terminal's signals do not reach it
            close_fds=True,
            env=dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True"),
        )
    finally:
        log.close()


def daemon_args(
    providers: list[str], local_models: Mapping[str, int], *, idle: float, auto: bool,
    debug: bool = False,
) -> list[str]:  # fmt: skip
    """The daemon's command line (see :func:`massgen_cli.stackd.main`)."""
    args = ["--state", str(state_file()), "--providers", ",".join(providers), "--idle", str(idle)]
    for name, slots in local_models.items():
        args += ["--local", f"{name}:{slots}"]
    if auto:
        args.append("--auto")
    if debug:
        args.append("--debug")
    return args


def spawn_background(
    providers: list[str],
    local_models: Mapping[str, int],
    say: Say = quiet,
    *,
    auto: bool = True,
    idle: float | None = None,
) -> bool:
    """Start a warm stack for the next commands, without waiting for it.

    Nothing is started while another daemon holds the lock (one is starting or
    running), or within :data:`~.state.RETRY_AFTER_FAILURE` of a failed start.

    Args:
        providers: worker pools to serve.
        local_models: local model name -> parallel slots.
        auto: started on first use (False: replaces one started by ``massgen up``).
        idle: unused seconds before it stops (None: :func:`idle_seconds`; 0: never).

    Returns:
        True when one was started.
    """
    if not may_spawn():
        return False
    state_file().unlink(missing_ok=True)
    idle = idle_seconds() if idle is None else idle
    spawn(daemon_args(providers, local_models, idle=idle, auto=auto), state_dir())
    say(spawn_note(idle))
    return True


def may_spawn() -> bool:
    """False while a daemon holds the lock or shortly after a failed start."""
    if daemon_running():
        return False
    state = read_state()
    return not (state and state.get("error") and not lapsed(state))


def spawn_note(idle: float | None = None) -> str:
    """What a command says when it starts the background stack."""
    idle = idle_seconds() if idle is None else idle
    until = f"it stops after {duration(idle)} unused" if idle > 0 else "until massgen down"
    return (
        f"starting a warm stack in the background for the next questions ({until}; "
        "'massgen down' stops it, --no-daemon or MASSGEN_NO_DAEMON=1 turns this off)"
    )


def _session_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4])
    except (OSError, IndexError, ValueError):
        return None


def _ours(pid: int, pgid: int | None) -> bool:
    """Is the live process ``pid`` still one of the stack's (not a reused id)?"""
    if pgid is not None and _session_of(pid) == pgid:
        return True
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"nats-server" in command or b"massgen" in command


def _kill_leftovers(state: Mapping[str, Any], say: Say) -> None:
    """SIGKILL what is left of a stack whose daemon is gone: its process group (the
    daemon's children stay in it), and the recorded processes that are still ours."""
    daemon = int(state.get("pid") or 0)
    pgid = state.get("pgid")
    if pgid and not pid_alive(int(pgid)):
        # The group outlives its leader only through its members: Linux does not reuse
        # an id that is still a group's, so a live group of this id is the stack's.
        try:
            os.killpg(int(pgid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for role, pid in (state.get("pids") or {}).items():
        pid = int(pid)
        if pid != daemon and pid_alive(pid) and _ours(pid, int(pgid) if pgid else None):
            say(f"killing {role} (pid {pid}) left behind by the warm stack")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def clean_stale(state: Mapping[str, Any], say: Say = quiet) -> None:
    """Remove what a stack that died left: processes, its JetStream folder, the state."""
    _kill_leftovers(state, say)
    store = state.get("nats_store")
    if store and Path(store).name.startswith("massgen-nats-"):
        import shutil

        shutil.rmtree(store, ignore_errors=True)
    forget(int(state.get("pid") or 0))
    say(f"cleaned up after a warm stack that died (pid {state.get('pid')})")


def stop_daemon(state: Mapping[str, Any], say: Say, timeout: float) -> None:
    """SIGTERM the daemon (which stops the rest in order), then kill what is left."""
    daemon = int(state.get("pid") or 0)
    if daemon and pid_alive(daemon):
        os.kill(daemon, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(daemon):
            time.sleep(0.05)
        if pid_alive(daemon):
            say(f"killing the warm stack (pid {daemon}): it did not stop")
            os.kill(daemon, signal.SIGKILL)
            while pid_alive(daemon):
                time.sleep(0.05)
    _kill_leftovers(state, say)
    forget(daemon)

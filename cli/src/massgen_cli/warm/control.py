"""``massgen up``, ``massgen status`` and ``massgen down``: the warm stack by hand."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .discovery import find_warm_stack
from .process import clean_stale, daemon_args, duration, quiet, spawn, stop_daemon
from .state import condition, daemon_running, pid_alive, read_state, state_dir, state_file

__all__ = ["stack_down", "stack_status", "stack_up"]


def stack_up(
    providers: list[str],
    local_models: dict[str, int],
    *,
    timeout: float = 900.0,
    say: Any = print,
    progress: Any = None,
    debug: bool = False,
    idle: float = 0.0,
) -> int:
    """Start the warm stack in the background and wait until it is ready.

    Args:
        providers: worker pools to serve.
        local_models: local model name -> parallel slots.
        progress: callable(text) for "still starting" notes (a spinner); None = quiet.
        idle: stop after this many unused seconds (0: run until ``massgen down``).

    Returns:
        A process exit code: 0 ready (or already running), 3 it failed to start.
    """
    running = find_warm_stack(say)
    if running is not None:
        how = (
            f"started on first use; it stops after {duration(running.idle_timeout)} unused"
            if running.auto
            else "started with massgen up"
        )
        say(f"a warm stack is already running at {running.url} ({how}; state: {state_file()})")
        return 0
    directory = state_dir()
    path = state_file()
    pid = None
    if not daemon_running():
        path.unlink(missing_ok=True)
        args = daemon_args(providers, local_models, idle=idle, auto=False, debug=debug)
        pid = spawn(args, directory).pid
    started = time.monotonic()
    note = "starting"
    while time.monotonic() - started < timeout:
        state = read_state(path) or {}
        mine = pid is None or state.get("pid") == pid
        if mine and state.get("ready"):
            _say_ready(state, path, say)
            return 0
        if mine and state.get("error"):
            say(f"warm stack failed to start: {state['error']} (log: {directory / 'stackd.log'})")
            return 3
        if not daemon_running() and time.monotonic() - started > 5.0:
            say(f"warm stack exited at start; see {directory / 'stackd.log'}")
            return 3
        note = state.get("progress") or note
        if progress is not None:
            progress(f"{note} ({time.monotonic() - started:.0f}s)")
        time.sleep(0.1)
    say(f"warm stack not ready after {timeout:.0f}s; see {directory / 'stackd.log'}")
    return 3


def _say_ready(state: dict[str, Any], path: Path, say: Any) -> None:
    """What ``massgen up`` prints once the stack is ready."""
    pids = ", ".join(f"{role} {pid}" for role, pid in state["pids"].items())
    say(f"warm stack up at {state['nats_url']}")
    say(f"  providers: {', '.join(state['providers'])}")
    for name, (url, _model) in (state.get("local_endpoints") or {}).items():
        say(f"  local model {name}: {url}")
    say(f"  processes: {pids}")
    say(f"  state: {path}")
    say(f"  logs: {state.get('log_dir')}")
    say("  stop it with: massgen down")


def stack_status(say: Any = print) -> int:
    """Print the warm stack: pid, version, whether it is in use or for how long it has
    been idle, its processes. 0 when it is up, 1 otherwise."""
    state = read_state()
    if not state:
        say(f"no warm stack (no {state_file()}); the next massgen command in a terminal "
            "starts one, or: massgen up")  # fmt: skip
        return 1
    doing = condition(state)
    if doing == "dead":
        clean_stale(state, say)
        say("no warm stack is running now")
        return 1
    if doing == "failed":
        say(f"the warm stack failed to start: {state.get('error')}")
        say(f"  log: {state_dir() / 'stackd.log'}")
        return 1
    if doing in ("starting", "stopping"):
        say(f"warm stack: {doing} (pid {state.get('pid')}) {state.get('progress', '')}")
        return 1
    from ..fingerprint import code_fingerprint

    pids = state.get("pids") or {}
    alive = {role: pid_alive(int(pid)) for role, pid in pids.items()}
    healthy = doing == "ready"
    say(f"warm stack: {'up' if healthy else 'NOT healthy'} at {state.get('nats_url')}")
    say(f"  pid {state.get('pid')}, massgen {state.get('version', '?')}, "
        f"code {'current' if state.get('fingerprint') == code_fingerprint() else 'OUTDATED'}"
        " (the next command replaces an outdated stack)")  # fmt: skip
    say(f"  {_lifetime(state)}")
    if state.get("started_at"):
        age = time.time() - float(state["started_at"])
        say(f"  started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(state['started_at']))}"
            f" ({duration(age)} ago) in {state.get('cwd', '?')}")  # fmt: skip
    say(f"  providers: {', '.join(state.get('providers') or [])}")
    for name, (url, _model) in (state.get("local_endpoints") or {}).items():
        say(f"  local model {name}: {url}")
    for role, pid in pids.items():
        say(f"  {role:<24} pid {pid:<8} {'running' if alive[role] else 'gone'}")
    say(f"  state: {state_file()}")
    say(f"  logs: {state.get('log_dir')}")
    return 0 if healthy else 1


def _lifetime(state: Mapping[str, Any]) -> str:
    """In use or idle, and when it stops: ``idle for 2 min (stops in 13 min)``."""
    timeout = float(state.get("idle_timeout") or 0)
    origin = "started on first use" if state.get("auto") else "started with massgen up"
    if state.get("idle_since") is None:
        clients = int(state.get("clients") or 0)
        use = f"in use ({clients} command(s) connected)" if clients else "in use (running turns)"
    else:
        idle = max(0.0, time.time() - float(state["idle_since"]))
        use = f"idle for {duration(idle)}"
        if timeout > 0:
            use += f" (stops in {duration(max(0.0, timeout - idle))})"
    until = f"stops after {duration(timeout)} unused" if timeout > 0 else "runs until massgen down"
    return f"{use}; {origin}, {until}"


def stack_down(timeout: float = 20.0, say: Any = print) -> int:
    """Stop the warm stack: SIGTERM to its daemon (which stops the rest in order).

    Processes still alive after ``timeout`` (the daemon could not stop them) are
    killed. Returns 0, or 1 when none ran.
    """
    state = read_state()
    if not state:
        say("no warm stack is running")
        return 1
    doing = condition(state)
    if doing in ("dead", "failed"):
        clean_stale(state, say if doing == "dead" else quiet)
        say("no warm stack is running")
        return 1
    stop_daemon(state, say, timeout)
    say(f"warm stack at {state.get('nats_url') or '(starting)'} stopped")
    return 0

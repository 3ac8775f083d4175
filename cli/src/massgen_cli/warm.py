"""A warm local stack: ``massgen up`` / ``massgen status`` / ``massgen down``.

``up`` starts ``python -m massgen_cli.stackd`` detached from the terminal (its own
session, so closing the terminal or Ctrl-C does not stop it). The daemon runs the
same :class:`~massgen_cli.embedded.EmbeddedStack` a single command would, and writes
a state file with the NATS URL and the process ids. While it runs, ``massgen
"question"`` connects to it instead of starting its own stack, so the command only
imports the client side (no orchestrator, no litellm, no model library).

State file: ``~/.massgen/stack.json`` (``$MASSGEN_RUNTIME_DIR/stack.json`` when that
is set). It lives under the user's home rather than ``$XDG_RUNTIME_DIR`` so that a
process with another HOME (a test, a sandbox) never picks up someone's warm stack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "WarmStack",
    "find_warm_stack",
    "pid_alive",
    "read_state",
    "state_dir",
    "state_file",
    "stack_down",
    "stack_status",
    "stack_up",
]


def state_dir() -> Path:
    """Folder of the state file and the stack's logs."""
    if os.environ.get("MASSGEN_RUNTIME_DIR"):
        return Path(os.environ["MASSGEN_RUNTIME_DIR"])
    return Path.home() / ".massgen"


def state_file() -> Path:
    """``stack.json`` in :func:`state_dir`."""
    return state_dir() / "stack.json"


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


class WarmStack:
    """A running warm stack, as its state file describes it."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.url: str = state["nats_url"]
        self.providers: list[str] = list(state.get("providers") or [])
        self.local_endpoints: dict[str, tuple[str, str]] = {
            name: (value[0], value[1])
            for name, value in (state.get("local_endpoints") or {}).items()
        }
        self.log_dir: str | None = state.get("log_dir")

    def serves(self, providers: list[str], local_models: list[str]) -> str | None:
        """None when it can run a config needing these; else why not."""
        missing = [p for p in providers if p not in self.providers and p != "local"]
        if missing:
            return f"it does not serve {', '.join(missing)}"
        if "local" in providers and "local" not in self.providers:
            return "it does not serve local models"
        absent = [m for m in local_models if m not in self.local_endpoints]
        if absent:
            return f"it does not run the local model {', '.join(absent)}"
        return None


def find_warm_stack() -> WarmStack | None:
    """The running warm stack, or None (no state file, not ready, or its daemon died)."""
    if os.environ.get("MASSGEN_NO_WARM"):
        return None
    state = read_state()
    if not state or not state.get("ready") or not state.get("nats_url"):
        return None
    pids = state.get("pids") or {}
    if not all(pid_alive(pid) for pid in pids.values()):
        return None
    return WarmStack(state)


def _spawn(args: list[str], directory: Path) -> subprocess.Popen:
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


def stack_up(
    providers: list[str],
    local_models: dict[str, int],
    *,
    timeout: float = 900.0,
    say: Any = print,
    progress: Any = None,
    debug: bool = False,
) -> int:
    """Start the warm stack in the background and wait until it is ready.

    Args:
        providers: worker pools to serve.
        local_models: local model name -> parallel slots.
        progress: callable(text) for "still starting" notes (a spinner); None = quiet.

    Returns:
        A process exit code: 0 ready (or already running), 3 it failed to start.
    """
    running = find_warm_stack()
    if running is not None:
        say(f"a warm stack is already running at {running.url} (state: {state_file()})")
        return 0
    directory = state_dir()
    path = state_file()
    path.unlink(missing_ok=True)
    args = ["--state", str(path), "--providers", ",".join(providers)]
    for name, slots in local_models.items():
        args += ["--local", f"{name}:{slots}"]
    if debug:
        args.append("--debug")
    proc = _spawn(args, directory)
    started = time.monotonic()
    note = "starting"
    while time.monotonic() - started < timeout:
        state = read_state(path) or {}
        if state.get("pid") == proc.pid and state.get("ready"):
            pids = ", ".join(f"{role} {pid}" for role, pid in state["pids"].items())
            say(f"warm stack up at {state['nats_url']}")
            say(f"  providers: {', '.join(state['providers'])}")
            for name, (url, _model) in (state.get("local_endpoints") or {}).items():
                say(f"  local model {name}: {url}")
            say(f"  processes: {pids}")
            say(f"  state: {path}")
            say(f"  logs: {state.get('log_dir')}")
            say("  stop it with: massgen down")
            return 0
        if state.get("pid") == proc.pid and state.get("error"):
            proc.wait(10)
            say(f"warm stack failed to start: {state['error']} (log: {directory / 'stackd.log'})")
            return 3
        if proc.poll() is not None:
            say(
                f"warm stack exited at start (code {proc.returncode}); see {directory / 'stackd.log'}"
            )
            return 3
        note = state.get("progress") or note
        if progress is not None:
            progress(f"{note} ({time.monotonic() - started:.0f}s)")
        time.sleep(0.1)
    say(f"warm stack not ready after {timeout:.0f}s; see {directory / 'stackd.log'}")
    return 3


def stack_status(say: Any = print) -> int:
    """Print the warm stack's processes and whether each is alive; 0 up, 1 not running."""
    state = read_state()
    if not state:
        say(f"no warm stack (no {state_file()}); start one with: massgen up")
        return 1
    pids = state.get("pids") or {}
    alive = {role: pid_alive(pid) for role, pid in pids.items()}
    healthy = bool(state.get("ready")) and bool(alive) and all(alive.values())
    say(f"warm stack: {'up' if healthy else 'NOT healthy'} at {state.get('nats_url')}")
    if state.get("started_at"):
        age = time.time() - float(state["started_at"])
        say(f"  started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(state['started_at']))}"
            f" ({age / 60:.0f} min ago)")  # fmt: skip
    say(f"  providers: {', '.join(state.get('providers') or [])}")
    for name, (url, _model) in (state.get("local_endpoints") or {}).items():
        say(f"  local model {name}: {url}")
    for role, pid in pids.items():
        say(f"  {role:<24} pid {pid:<8} {'running' if alive[role] else 'gone'}")
    say(f"  state: {state_file()}")
    say(f"  logs: {state.get('log_dir')}")
    return 0 if healthy else 1


def stack_down(timeout: float = 20.0, say: Any = print) -> int:
    """Stop the warm stack: SIGTERM to its daemon (which stops the rest in order).

    Processes still alive after ``timeout`` (the daemon could not stop them) are
    killed one by one, by the ids in the state file. Returns 0, or 1 when none ran.
    """
    path = state_file()
    state = read_state(path)
    if not state:
        say("no warm stack is running")
        return 1
    daemon = int(state.get("pid") or 0)
    pids = {role: int(pid) for role, pid in (state.get("pids") or {}).items()}
    if daemon and pid_alive(daemon):
        os.kill(daemon, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(daemon):
            time.sleep(0.05)
    leftovers = [(role, pid) for role, pid in pids.items() if pid_alive(pid)]
    for role, pid in leftovers:
        say(f"killing {role} (pid {pid}): it did not stop")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    path.unlink(missing_ok=True)
    say(f"warm stack at {state.get('nats_url')} stopped")
    return 0

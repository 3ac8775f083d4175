"""The warm local stack: started on first use or by ``massgen up``, shown by ``massgen
status``, stopped by ``massgen down`` or after an idle period.

The stack is ``python -m massgen_cli.stackd`` (see :mod:`.stackd`), detached from the
terminal (its own session, so closing the terminal or Ctrl-C does not stop it). It
runs the same :class:`~massgen_cli.embedded.EmbeddedStack` a single command would, and
writes a state file with the NATS URL, the process ids and the fingerprints of the
code and settings it runs. While it runs, ``massgen "question"`` connects to it
instead of starting its own stack.

Two ways it starts:

- *on first use*: a ``massgen`` command in a terminal finds none, runs its question
  on its own stack as before, and starts one in the background for the next commands
  (:func:`background_allowed`, :func:`spawn_background`). It stops after
  ``$MASSGEN_DAEMON_IDLE`` seconds (default 900) with no run and no connected command.
- ``massgen up``: started by hand, runs until ``massgen down`` (or ``--idle S``).

What a command checks before using it (:func:`find_warm_stack`): the daemon still
holds its lock (else it died: its state and any leftover process are cleaned up), and
it runs this installation's code (else it is replaced: it finishes what it is doing
and stops, and the command runs on a stack of its own).

State file: ``~/.massgen/stack.json`` (``$MASSGEN_RUNTIME_DIR/stack.json`` when that
is set), next to ``stack.lock``, ``stackd.log`` and ``stack-logs/``. It lives under
the user's home rather than ``$XDG_RUNTIME_DIR`` so that a process with another HOME
(a test, a sandbox) never picks up someone's warm stack.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DEFAULT_IDLE_SECONDS",
    "WarmStack",
    "background_allowed",
    "clean_stale",
    "daemon_running",
    "find_warm_stack",
    "idle_seconds",
    "last_replaced",
    "may_spawn",
    "pid_alive",
    "read_state",
    "retire",
    "spawn_background",
    "spawn_note",
    "stack_down",
    "stack_status",
    "stack_up",
    "starting_stack",
    "state_dir",
    "state_file",
]

DEFAULT_IDLE_SECONDS = 900.0
"""How long a stack started on first use waits unused before it stops."""

RETRY_AFTER_FAILURE = 600.0
"""After a background stack failed to start, commands do not start another for this long."""

Say = Callable[[str], None]


def _quiet(_text: str) -> None:
    pass


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


def idle_seconds(env: Mapping[str, str] | None = None) -> float:
    """``$MASSGEN_DAEMON_IDLE`` (seconds, > 0), else :data:`DEFAULT_IDLE_SECONDS`."""
    value = (os.environ if env is None else env).get("MASSGEN_DAEMON_IDLE", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_IDLE_SECONDS
    return seconds if seconds > 0 else DEFAULT_IDLE_SECONDS


def background_allowed(
    *, no_daemon: bool = False, embedded: bool = False, stream: IO[str] | None = None
) -> bool:
    """May this command start the background stack?

    Only in interactive use: stdout is a terminal, and neither ``--no-daemon``,
    ``--embedded``, ``$MASSGEN_NO_DAEMON`` nor ``$MASSGEN_NO_WARM`` (which keeps
    commands off warm stacks) says otherwise. Scripts, CI and pipes never start one
    (they still use one that runs).
    """
    stream = sys.stdout if stream is None else stream
    if no_daemon or embedded:
        return False
    if os.environ.get("MASSGEN_NO_DAEMON") or os.environ.get("MASSGEN_NO_WARM"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


class WarmStack:
    """A running warm stack, as its state file describes it."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.url: str = state["nats_url"]
        self.pid: int = int(state.get("pid") or 0)
        self.providers: list[str] = list(state.get("providers") or [])
        self.local: dict[str, int] = dict(state.get("local") or {})
        """Local model name -> parallel slots, as it was started with."""
        self.local_endpoints: dict[str, tuple[str, str]] = {
            name: (value[0], value[1])
            for name, value in (state.get("local_endpoints") or {}).items()
        }
        self.log_dir: str | None = state.get("log_dir")
        self.auto: bool = bool(state.get("auto"))
        """Started on first use (it stops when unused), not by ``massgen up``."""
        self.idle_timeout: float = float(state.get("idle_timeout") or 0)
        self.cwd: str | None = state.get("cwd")

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

    def unfit(
        self, providers: list[str], local_models: list[str], *, uses_files: bool
    ) -> str | None:
        """None when a run of this command may go to it; else why not.

        Beyond :meth:`serves`: it must have been started with the same provider keys
        and settings, and for a team with files or tools (workspaces, context paths,
        custom tools, MCP servers) in the same folder, since relative paths resolve
        against the stack's folder.
        """
        from .fingerprint import env_fingerprint

        why = self.serves(providers, local_models)
        if why is not None:
            return why
        if self.state.get("env") != env_fingerprint():
            return "it was started with other provider keys or settings"
        if uses_files and self.cwd is not None and self.cwd != os.getcwd():
            return f"it runs in {self.cwd} and this team uses files or tools"
        return None

    @property
    def busy(self) -> bool:
        """True while a command is connected to it or a turn is queued or running."""
        return self.state.get("idle_since") is None


def _has_lapsed(state: Mapping[str, Any]) -> bool:
    """A failed start long enough ago that another may be tried."""
    return time.time() - float(state.get("failed_at") or 0) > RETRY_AFTER_FAILURE


def _condition(state: Mapping[str, Any]) -> str:
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


def find_warm_stack(say: Say | None = None) -> WarmStack | None:
    """The running warm stack, if it can take this command's runs; else None.

    Also tidies up: the state of a stack that died is removed with whatever process
    of it is left, and a stack running other code than this command's is replaced
    (``say`` tells the user either).
    """
    if os.environ.get("MASSGEN_NO_WARM"):
        return None
    state = read_state()
    if not state:
        return None
    say = say or _quiet
    match _condition(state):
        case "dead":
            clean_stale(state, say)
            return None
        case "legacy":
            _stop_daemon(state, say, timeout=20.0)
            say(f"stopped the warm stack (pid {state.get('pid')}): it ran an older version")
            return None
        case "failed":
            if _has_lapsed(state):
                state_file().unlink(missing_ok=True)
            return None
        case "starting" | "stopping" | "broken":
            return None
    from .fingerprint import code_fingerprint

    if state.get("fingerprint") != code_fingerprint():
        retire(state, "the installed massgen code changed since it started", say)
        return None
    return WarmStack(state)


def starting_stack() -> dict[str, Any] | None:
    """The state of a warm stack that is starting (to wait for), else None."""
    if os.environ.get("MASSGEN_NO_WARM"):
        return None
    state = read_state()
    if state and _condition(state) == "starting":
        return state
    return None


_replaced: list[dict[str, Any]] = []


def last_replaced() -> dict[str, Any] | None:
    """The state of the stack this command replaced (:func:`retire`), if any: what its
    successor should serve, and whether it was started by hand."""
    return _replaced[-1] if _replaced else None


def retire(state: Mapping[str, Any], reason: str, say: Say = _quiet) -> None:
    """Replace a running stack: it gives up its state file and lock at once (a new one
    can start), finishes the runs of commands still connected to it, then stops."""
    pid = int(state.get("pid") or 0)
    _replaced.append(dict(state))
    _forget(pid)
    if pid and pid_alive(pid):
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
    say(f"replacing the warm stack (pid {pid}): {reason}")


def _forget(pid: int) -> None:
    """Remove the state file if it still describes the daemon ``pid``."""
    current = read_state()
    if current is not None and int(current.get("pid") or 0) == pid:
        state_file().unlink(missing_ok=True)


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


def clean_stale(state: Mapping[str, Any], say: Say = _quiet) -> None:
    """Remove what a stack that died left: processes, its JetStream folder, the state."""
    _kill_leftovers(state, say)
    store = state.get("nats_store")
    if store and Path(store).name.startswith("massgen-nats-"):
        import shutil

        shutil.rmtree(store, ignore_errors=True)
    _forget(int(state.get("pid") or 0))
    say(f"cleaned up after a warm stack that died (pid {state.get('pid')})")


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


def _daemon_args(
    providers: list[str], local_models: Mapping[str, int], *, idle: float, auto: bool,
    debug: bool = False,
) -> list[str]:  # fmt: skip
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
    say: Say = _quiet,
    *,
    auto: bool = True,
    idle: float | None = None,
) -> bool:
    """Start a warm stack for the next commands, without waiting for it.

    Nothing is started while another daemon holds the lock (one is starting or
    running), or within :data:`RETRY_AFTER_FAILURE` of a failed start.

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
    _spawn(_daemon_args(providers, local_models, idle=idle, auto=auto), state_dir())
    say(spawn_note(idle))
    return True


def may_spawn() -> bool:
    """False while a daemon holds the lock or shortly after a failed start."""
    if daemon_running():
        return False
    state = read_state()
    return not (state and state.get("error") and not _has_lapsed(state))


def spawn_note(idle: float | None = None) -> str:
    """What a command says when it starts the background stack."""
    idle = idle_seconds() if idle is None else idle
    until = f"it stops after {_duration(idle)} unused" if idle > 0 else "until massgen down"
    return (
        f"starting a warm stack in the background for the next questions ({until}; "
        "'massgen down' stops it, --no-daemon or MASSGEN_NO_DAEMON=1 turns this off)"
    )


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


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
            f"started on first use; it stops after {_duration(running.idle_timeout)} unused"
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
        args = _daemon_args(providers, local_models, idle=idle, auto=False, debug=debug)
        pid = _spawn(args, directory).pid
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
    condition = _condition(state)
    if condition == "dead":
        clean_stale(state, say)
        say("no warm stack is running now")
        return 1
    if condition == "failed":
        say(f"the warm stack failed to start: {state.get('error')}")
        say(f"  log: {state_dir() / 'stackd.log'}")
        return 1
    if condition in ("starting", "stopping"):
        say(f"warm stack: {condition} (pid {state.get('pid')}) {state.get('progress', '')}")
        return 1
    from .fingerprint import code_fingerprint

    pids = state.get("pids") or {}
    alive = {role: pid_alive(int(pid)) for role, pid in pids.items()}
    healthy = condition == "ready"
    say(f"warm stack: {'up' if healthy else 'NOT healthy'} at {state.get('nats_url')}")
    say(f"  pid {state.get('pid')}, massgen {state.get('version', '?')}, "
        f"code {'current' if state.get('fingerprint') == code_fingerprint() else 'OUTDATED'}"
        " (the next command replaces an outdated stack)")  # fmt: skip
    say(f"  {_lifetime(state)}")
    if state.get("started_at"):
        age = time.time() - float(state["started_at"])
        say(f"  started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(state['started_at']))}"
            f" ({_duration(age)} ago) in {state.get('cwd', '?')}")  # fmt: skip
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
        use = f"idle for {_duration(idle)}"
        if timeout > 0:
            use += f" (stops in {_duration(max(0.0, timeout - idle))})"
    until = f"stops after {_duration(timeout)} unused" if timeout > 0 else "runs until massgen down"
    return f"{use}; {origin}, {until}"


def _stop_daemon(state: Mapping[str, Any], say: Say, timeout: float) -> None:
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
    _forget(daemon)


def stack_down(timeout: float = 20.0, say: Any = print) -> int:
    """Stop the warm stack: SIGTERM to its daemon (which stops the rest in order).

    Processes still alive after ``timeout`` (the daemon could not stop them) are
    killed. Returns 0, or 1 when none ran.
    """
    state = read_state()
    if not state:
        say("no warm stack is running")
        return 1
    condition = _condition(state)
    if condition in ("dead", "failed"):
        clean_stale(state, say if condition == "dead" else _quiet)
        say("no warm stack is running")
        return 1
    _stop_daemon(state, say, timeout)
    say(f"warm stack at {state.get('nats_url') or '(starting)'} stopped")
    return 0

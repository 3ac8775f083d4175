"""Finding the warm stack a command may use, and replacing one that runs old code."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from typing import IO, Any

from .process import Say, clean_stale, quiet, stop_daemon
from .state import condition, forget, lapsed, pid_alive, read_state, state_file

__all__ = [
    "WarmStack",
    "background_allowed",
    "find_warm_stack",
    "last_replaced",
    "retire",
    "starting_stack",
]


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
        from ..fingerprint import env_fingerprint

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
    say = say or quiet
    match condition(state):
        case "dead":
            clean_stale(state, say)
            return None
        case "legacy":
            stop_daemon(state, say, timeout=20.0)
            say(f"stopped the warm stack (pid {state.get('pid')}): it ran an older version")
            return None
        case "failed":
            if lapsed(state):
                state_file().unlink(missing_ok=True)
            return None
        case "starting" | "stopping" | "broken":
            return None
    from ..fingerprint import code_fingerprint

    if state.get("fingerprint") != code_fingerprint():
        retire(state, "the installed massgen code changed since it started", say)
        return None
    return WarmStack(state)


def starting_stack() -> dict[str, Any] | None:
    """The state of a warm stack that is starting (to wait for), else None."""
    if os.environ.get("MASSGEN_NO_WARM"):
        return None
    state = read_state()
    if state and condition(state) == "starting":
        return state
    return None


_replaced: list[dict[str, Any]] = []


def last_replaced() -> dict[str, Any] | None:
    """The state of the stack this command replaced (:func:`retire`), if any: what its
    successor should serve, and whether it was started by hand."""
    return _replaced[-1] if _replaced else None


def retire(state: Mapping[str, Any], reason: str, say: Say = quiet) -> None:
    """Replace a running stack: it gives up its state file and lock at once (a new one
    can start), finishes the runs of commands still connected to it, then stops."""
    pid = int(state.get("pid") or 0)
    _replaced.append(dict(state))
    forget(pid)
    if pid and pid_alive(pid):
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
    say(f"replacing the warm stack (pid {pid}): {reason}")

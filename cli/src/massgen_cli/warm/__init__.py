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

The package, one job per module: :mod:`.state` (the state file, the lock, what they
say), :mod:`.process` (starting the daemon, stopping what is left of one),
:mod:`.discovery` (the stack a command may use), :mod:`.control` (``massgen up``,
``status``, ``down``). Import from the package: its names below are the interface.
"""

from __future__ import annotations

from .control import stack_down, stack_status, stack_up
from .discovery import (
    WarmStack,
    background_allowed,
    find_warm_stack,
    last_replaced,
    retire,
    starting_stack,
)
from .process import (
    DEFAULT_IDLE_SECONDS,
    clean_stale,
    idle_seconds,
    may_spawn,
    spawn_background,
    spawn_note,
)
from .state import daemon_running, pid_alive, read_state, state_dir, state_file

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

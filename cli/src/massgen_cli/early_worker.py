"""Start the worker process and nats-server first, before the command knows what the
run needs.

The worker's imports take a few hundred ms, as do the command's own (config, the
in-process orchestrator); nats-server takes tens of ms to get ready. Both processes are
started as soon as the command knows it will run a question on a stack of its own;
the worker is told the NATS URL and providers later (one JSON line on its stdin). Both
are killed if the command ends without needing them, and die with it (``kill -9``
included). Standard library only: this module is imported before anything else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "die_with_parent",
    "discard",
    "launch",
    "resolve_prctl",
    "start",
    "started",
    "take",
    "take_nats",
]

_early: subprocess.Popen | None = None
_early_nats: Any = None


_prctl: Any = None


def resolve_prctl() -> Any:
    """libc's ``prctl`` (None where there is none), looked up once in this process.

    Call it before starting a child with :func:`die_with_parent`: the child, between
    fork and exec (which its parent waits for), then only calls it.
    """
    global _prctl
    if _prctl is None:
        try:
            import ctypes

            _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
        except OSError:  # not Linux / no glibc: the stack still stops on a normal exit
            _prctl = False
    return _prctl or None


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when this process dies (Linux), so a killed
    ``massgen`` leaves no worker or model server behind."""
    prctl = resolve_prctl()
    if prctl is not None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn_worker(args: list[str], *, own_session: bool = True, **popen: object) -> subprocess.Popen:
    """``python -m massgen_worker ARGS`` as a child that dies with this process.

    Args:
        own_session: a session of its own (Ctrl-C in the terminal reaches us, and we
            stop the worker ourselves); False keeps it in our process group (the
            background stack, whose group is killed as one).
    """
    resolve_prctl()  # here, not in the forked child
    return subprocess.Popen(
        [sys.executable, "-m", "massgen_worker", *args],
        env=dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True"),
        start_new_session=own_session,
        preexec_fn=die_with_parent,
        **popen,  # type: ignore[arg-type]
    )


def start() -> None:
    """Start the worker (it loads its code, then waits for ``launch``) and nats-server
    (for a stack of this command's own: ``take_nats``) now."""
    global _early, _early_nats
    if _early is None:
        _early = spawn_worker(
            ["--launch-from-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    if _early_nats is None:
        from .nats_server import NatsServer, NatsServerError

        try:
            _early_nats = NatsServer(own_session=True, die_with_parent=True).spawn()
        except (OSError, NatsServerError):  # not installed: the stack says so when it starts
            _early_nats = None


def started() -> bool:
    """True while processes started by :func:`start` wait to be taken: the command
    found no warm stack a moment ago and runs on a stack of its own."""
    return _early is not None or _early_nats is not None


def take_nats() -> Any:
    """The early nats-server (a :class:`~massgen_cli.nats_server.NatsServer`, spawned, in a
    session of its own, dying with this process), once; None if none was started."""
    global _early_nats
    server, _early_nats = _early_nats, None
    return server


def take() -> subprocess.Popen | None:
    """The early worker, once, if it is still running; None otherwise."""
    global _early
    proc, _early = _early, None
    if proc is not None and proc.poll() is not None:
        return None
    return proc


def launch(
    proc: subprocess.Popen,
    nats_url: str,
    providers: list[str],
    log_level: str,
    log_file: Path | None,
) -> None:
    """Tell the early worker where to connect and what to serve."""
    line = {
        "nats": nats_url,
        "providers": providers,
        "log_level": log_level,
        "log_file": str(log_file) if log_file is not None else None,
        "memory_streams": True,
    }
    assert proc.stdin is not None
    try:
        proc.stdin.write((json.dumps(line) + "\n").encode())
        proc.stdin.close()
    except BrokenPipeError:  # it died meanwhile: the caller sees it as not alive
        pass


def discard() -> None:
    """Stop the early worker and nats-server if nothing took them (the command did not
    need them)."""
    proc = take()
    if proc is not None:
        proc.kill()
        proc.wait()
    server = take_nats()
    if server is not None:
        server.stop()

"""Start the worker process first, before the command knows what the run needs.

The worker's imports take about two seconds (litellm); the command's own start-up
(config, the in-process orchestrator, nats-server) takes a few hundred ms more. The
worker is started as soon as the command knows it will run a question on a stack of
its own, told the NATS URL and providers later (one JSON line on its stdin), and
killed if the command ends without needing it. Standard library only: this module is
imported before anything else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["die_with_parent", "discard", "launch", "start", "take"]

_early: subprocess.Popen | None = None


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when this process dies (Linux), so a killed
    ``massgen`` leaves no worker or model server behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux / no glibc: the stack still stops on a normal exit
        pass


def spawn_worker(args: list[str], *, own_session: bool = True, **popen: object) -> subprocess.Popen:
    """``python -m massgen_worker ARGS`` as a child that dies with this process.

    Args:
        own_session: a session of its own (Ctrl-C in the terminal reaches us, and we
            stop the worker ourselves); False keeps it in our process group (the
            background stack, whose group is killed as one).
    """
    return subprocess.Popen(
        [sys.executable, "-m", "massgen_worker", *args],
        env=dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True"),
        start_new_session=own_session,
        preexec_fn=die_with_parent,
        **popen,  # type: ignore[arg-type]
    )


def start() -> None:
    """Start the worker now; it loads litellm and then waits for ``launch``."""
    global _early
    if _early is None:
        _early = spawn_worker(
            ["--launch-from-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


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
    """Stop the early worker if nothing took it (the command did not need it)."""
    proc = take()
    if proc is not None:
        proc.kill()
        proc.wait()

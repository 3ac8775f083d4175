"""The warm-stack daemon started by ``massgen up`` (``python -m massgen_cli.stackd``).

Runs an :class:`~massgen_cli.embedded.EmbeddedStack` until SIGTERM/SIGINT, and keeps
the state file up to date: progress while starting, then the NATS URL, the served
providers, local model endpoints and every process id. Removes the file on the way
out (only if it is still its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _write(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


async def _serve(args: argparse.Namespace) -> int:
    from massgen_kit.logsetup import configure_logging

    from .embedded import EmbeddedStack, LocalModelStartError

    path = Path(args.state)
    path.parent.mkdir(parents=True, exist_ok=True)
    log_dir = path.parent / "stack-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(
        "debug" if args.debug else "info",
        (log_dir / "services.log").open("a", encoding="utf-8"),
    )
    base = {"pid": os.getpid(), "ready": False, "log_dir": str(log_dir)}
    _write(path, {**base, "progress": "starting nats-server, orchestrator and workers"})
    providers = [p for p in args.providers.split(",") if p]
    local: Counter[str] = Counter()
    for item in args.local:
        name, _, slots = item.rpartition(":") if ":" in item else (item, "", "3")
        local[name] = int(slots or 3)
    if local and "local" not in providers:
        providers.append("local")

    def progress(note: str) -> None:
        _write(path, {**base, "progress": note})

    stack = EmbeddedStack(
        providers, log_dir=log_dir, debug=args.debug, local_models=local, on_progress=progress
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stack.start()
    except (LocalModelStartError, OSError, RuntimeError) as error:
        await stack.stop()
        _write(path, {**base, "error": str(error)})
        return 3
    _write(
        path,
        {
            **base,
            "ready": True,
            "nats_url": stack.nats.url,
            "providers": providers,
            "local_endpoints": {k: list(v) for k, v in stack.local_endpoints.items()},
            "pids": {"stackd": os.getpid(), **stack.pids()},
            "started_at": time.time(),
        },
    )
    try:
        await stop.wait()
    finally:
        await stack.stop()
        state = None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        if state is not None and state.get("pid") == os.getpid():
            path.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the daemon."""
    parser = argparse.ArgumentParser(prog="massgen-stackd", description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, help="state file to write")
    parser.add_argument("--providers", required=True, help="comma-separated worker pools")
    parser.add_argument("--local", action="append", default=[], help="local model NAME[:SLOTS]")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    raise SystemExit(main())

"""``massgen-worker --nats nats://... --providers openai,anthropic [--concurrency N]``.

Runs one WorkerService until SIGTERM/SIGINT, then stops it gracefully (running turns
get ``graceful_timeout`` seconds, the rest are handed back to JetStream).

``--launch-from-stdin`` lets a launcher start the process before it knows where the
worker will connect: the worker's code loads first, then one JSON line on stdin gives
``nats``, ``providers`` and optionally ``log_level``, ``log_file`` and
``memory_streams``. If stdin closes without a line, the process exits quietly.

Nothing waits for ``import litellm`` (seconds): calls of OpenAI-protocol backends go
straight over HTTP (see ``llm``). When a provider served needs litellm
(``llm.needs_litellm``: anthropic, gemini, xai, ...), it is imported in a background
thread once the providers are known, while the worker connects and takes turns; a turn
that needs it before it is ready waits for it, others do not.

Start-up order: every module a turn needs (nats-py, httpx, the service) is imported
first, with the cyclic GC paused and without optional packages the worker never uses
(``massgen_kit.runtime.import_lean``); a launcher's worker does this while its launcher
is still starting nats-server, so only connecting remains once the launch line comes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from massgen_kit.runtime import exit_now, import_lean, loading_code, mark

__all__ = ["main"]

_LIBRARIES = ("structlog", "nats", "nats.js", "httpx", "httpcore", "anyio._backends._asyncio")
"""What a turn needs beyond the worker's own modules (the direct model path's included)."""


def _load_code() -> None:
    """Import everything a turn needs, with the GC paused (see ``loading_code``)."""
    with loading_code():
        import_lean(*_LIBRARIES)
        from . import llm, openai_http, service  # noqa: F401


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="massgen-worker", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nats",
        default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        help="NATS server URL (default $NATS_URL)",
    )
    parser.add_argument(
        "--providers", help="comma-separated providers to serve, e.g. openai,anthropic"
    )
    parser.add_argument(
        "--launch-from-stdin",
        action="store_true",
        help="load the worker first, then read the launch settings as a JSON line on stdin",
    )
    parser.add_argument("--concurrency", type=int, default=None, help="turns run at once")
    parser.add_argument("--ack-wait", type=float, default=None, help="JetStream ack wait (s)")
    parser.add_argument("--name", default=None, help="worker name (default: host-pid)")
    parser.add_argument(
        "--memory-streams",
        action="store_true",
        help="create streams in memory if they do not exist yet (embedded mode)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--health-port", type=int, default=None, help="serve /healthz /readyz")
    parser.add_argument("--nats-user", default=None, help="NATS user (default $NATS_USER)")
    parser.add_argument(
        "--nats-password", default=None, help="NATS password (default $NATS_PASSWORD)"
    )
    args = parser.parse_args(argv)
    if not args.providers and not args.launch_from_stdin:
        parser.error("--providers is required (or --launch-from-stdin)")
    return args


async def _read_launch(args: argparse.Namespace) -> bool:
    """Apply the launch line from stdin to ``args``; False when stdin closed first."""
    line = await asyncio.to_thread(sys.stdin.readline)
    if not line.strip():
        return False
    launch = json.loads(line)
    args.nats = launch["nats"]
    args.providers = ",".join(launch["providers"])
    args.memory_streams = bool(launch.get("memory_streams", args.memory_streams))
    args.log_level = launch.get("log_level", args.log_level)
    if launch.get("log_file"):
        # Everything this process writes from now on (logs, a crash) goes to the file.
        fd = os.open(launch["log_file"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    _configure(args.log_level)
    return True


def _configure(log_level: str) -> None:
    from massgen_kit import tracing
    from massgen_kit.logsetup import configure_logging

    configure_logging(log_level)
    tracing.configure("massgen-worker")


async def _serve(args: argparse.Namespace) -> None:
    from .llm import apreload

    # The direct path's imports, TLS context and a warm-up call (~0.2 s, mostly in a
    # thread) run while the launch line is awaited and the connection is made; the
    # service starts the same warm-up, so this only gets it going earlier.
    warming = asyncio.create_task(apreload(), name="direct-warm-up")
    try:
        await _launch_and_serve(args)
    finally:
        await asyncio.gather(warming, return_exceptions=True)


async def _launch_and_serve(args: argparse.Namespace) -> None:
    from massgen_kit.health import (
        credentials_from_env,
        nats_url_with_credentials,
        serve_until_signalled,
    )
    from massgen_kit.jetstream import StreamSettings

    from .llm import apreload, needs_litellm
    from .service import WorkerService
    from .settings import WorkerSettings

    if args.launch_from_stdin and not await _read_launch(args):
        return
    mark("worker: launch line read")
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    settings = WorkerSettings.from_env(
        concurrency=args.concurrency,
        ack_wait=args.ack_wait,
        worker_name=args.name,
        stream_settings=StreamSettings(memory=True) if args.memory_streams else None,
    )
    user, password = credentials_from_env(args.nats_user, args.nats_password)
    service = WorkerService(
        nats_url_with_credentials(args.nats, user, password), providers, settings
    )
    # litellm only if a provider needs it, in the background: turn-taking never waits
    # for it, only a turn that needs it does (``LiteLLMModel``).
    preloading = (
        asyncio.create_task(apreload(providers), name="litellm-preload")
        if needs_litellm(providers)
        else None
    )
    try:
        await serve_until_signalled(service, args.health_port)
    finally:
        if preloading is not None:
            # A thread cannot be interrupted; wait for it so no task is left unawaited.
            await asyncio.gather(preloading, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    mark("worker: main")
    args = _parse(argv)
    _load_code()
    mark("worker: code loaded")
    _configure(args.log_level)
    asyncio.run(_serve(args))
    # Stopped cleanly: turns finished or handed back, connection drained.
    exit_now(0)


if __name__ == "__main__":
    main()

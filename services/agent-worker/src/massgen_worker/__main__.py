"""``massgen-worker --nats nats://... --providers openai,anthropic [--concurrency N]``.

Runs one WorkerService until SIGTERM/SIGINT, then stops it gracefully (running turns
get ``graceful_timeout`` seconds, the rest are handed back to JetStream).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from massgen_proto.jetstream import StreamSettings
from massgen_proto.logsetup import configure_logging

from .settings import WorkerSettings

__all__ = ["main"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="massgen-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS server URL(s)")
    parser.add_argument(
        "--providers", required=True, help="comma-separated providers to serve, e.g. openai,anthropic"
    )
    parser.add_argument("--concurrency", type=int, default=None, help="turns run at once")
    parser.add_argument("--ack-wait", type=float, default=None, help="JetStream ack wait (s)")
    parser.add_argument("--name", default=None, help="worker name (default: host-pid)")
    parser.add_argument(
        "--memory-streams", action="store_true",
        help="create streams in memory if they do not exist yet (embedded mode)",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    from .llm import preload
    from .service import WorkerService

    settings = WorkerSettings.from_env(
        concurrency=args.concurrency,
        ack_wait=args.ack_wait,
        worker_name=args.name,
        stream_settings=StreamSettings(memory=True) if args.memory_streams else None,
    )
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    # Pay for ``import litellm`` now, off the event loop, not on the first turn.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, preload)
    service = WorkerService(args.nats, providers, settings)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        await stop.wait()
    finally:
        await service.stop()


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = _parse(argv)
    configure_logging(args.log_level)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()

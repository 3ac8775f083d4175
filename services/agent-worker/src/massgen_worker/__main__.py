"""``massgen-worker --nats nats://... --providers openai,anthropic [--concurrency N]``.

Runs one WorkerService until SIGTERM/SIGINT, then stops it gracefully (running turns
get ``graceful_timeout`` seconds, the rest are handed back to JetStream).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

import structlog

from .settings import WorkerSettings

__all__ = ["configure_logging", "main"]


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr, one object per event."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="massgen-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS server URL(s)")
    parser.add_argument(
        "--providers", required=True, help="comma-separated providers to serve, e.g. openai,anthropic"
    )
    parser.add_argument("--concurrency", type=int, default=None, help="turns run at once")
    parser.add_argument("--ack-wait", type=float, default=None, help="JetStream ack wait (s)")
    parser.add_argument("--name", default=None, help="worker name (default: host-pid)")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    from .llm import preload
    from .service import WorkerService

    settings = WorkerSettings.from_env(
        concurrency=args.concurrency, ack_wait=args.ack_wait, worker_name=args.name
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

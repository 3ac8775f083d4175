"""``massgen-worker --nats nats://... --providers openai,anthropic [--concurrency N]``.

Runs one WorkerService until SIGTERM/SIGINT, then stops it gracefully (running turns
get ``graceful_timeout`` seconds, the rest are handed back to JetStream).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from massgen_proto.health import (
    credentials_from_env,
    nats_url_with_credentials,
    serve_until_signalled,
)
from massgen_proto.jetstream import StreamSettings
from massgen_proto.logsetup import configure_logging

from .settings import WorkerSettings

__all__ = ["main"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="massgen-worker", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nats",
        default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        help="NATS server URL (default $NATS_URL)",
    )
    parser.add_argument(
        "--providers",
        required=True,
        help="comma-separated providers to serve, e.g. openai,anthropic",
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
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    from .llm import apreload
    from .service import WorkerService

    settings = WorkerSettings.from_env(
        concurrency=args.concurrency,
        ack_wait=args.ack_wait,
        worker_name=args.name,
        stream_settings=StreamSettings(memory=True) if args.memory_streams else None,
    )
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    # Pay for ``import litellm`` and its first-call imports now, not on the first turn.
    await apreload()
    user, password = credentials_from_env(args.nats_user, args.nats_password)
    service = WorkerService(
        nats_url_with_credentials(args.nats, user, password), providers, settings
    )
    await serve_until_signalled(service, args.health_port)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = _parse(argv)
    configure_logging(args.log_level)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()

"""``massgen-orchestrator``: run one orchestrator replica until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio

from massgen_kit import tracing
from massgen_kit.health import (
    credentials_from_env,
    nats_url_with_credentials,
    serve_until_signalled,
)
from massgen_kit.logsetup import configure_logging

from .service import OrchestratorService
from .settings import OrchestratorSettings


async def _serve(settings: OrchestratorSettings, health_port: int | None = None) -> None:
    await serve_until_signalled(OrchestratorService(settings), health_port)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(prog="massgen-orchestrator", description=__doc__)
    parser.add_argument("--nats", dest="nats_url", help="NATS URL (default $NATS_URL)")
    parser.add_argument("--stream-replicas", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--health-port", type=int, default=None, help="serve /healthz /readyz")
    parser.add_argument("--nats-user", default=None, help="NATS user (default $NATS_USER)")
    parser.add_argument(
        "--nats-password", default=None, help="NATS password (default $NATS_PASSWORD)"
    )
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    tracing.configure("massgen-orchestrator")
    values = {"stream_replicas": args.stream_replicas}
    if args.nats_url:
        values["nats_url"] = args.nats_url
    settings = OrchestratorSettings(**values)
    user, password = credentials_from_env(args.nats_user, args.nats_password)
    settings = settings.model_copy(
        update={"nats_url": nats_url_with_credentials(settings.nats_url, user, password)}
    )
    asyncio.run(_serve(settings, args.health_port))


if __name__ == "__main__":
    main()

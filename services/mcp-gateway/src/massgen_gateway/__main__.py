"""``massgen-gateway``: run one mcp-gateway replica until SIGTERM/SIGINT."""

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

from .service import GatewayService
from .settings import GatewaySettings


async def _serve(settings: GatewaySettings, health_port: int | None = None) -> None:
    await serve_until_signalled(GatewayService(settings), health_port)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(prog="massgen-gateway", description=__doc__)
    parser.add_argument("--nats", dest="nats_url", help="NATS URL (default $NATS_URL)")
    parser.add_argument("--workspace-root", help="folder of the runs' workspaces")
    parser.add_argument("--final-dir", help="where final workspaces go ({run_id} is replaced)")
    parser.add_argument("--call-timeout", type=float)
    parser.add_argument("--stream-replicas", type=int, default=None)
    parser.add_argument("--memory-streams", action="store_true", default=None)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--health-port", type=int, default=None, help="serve /healthz /readyz")
    parser.add_argument("--nats-user", default=None, help="NATS user (default $NATS_USER)")
    parser.add_argument(
        "--nats-password", default=None, help="NATS password (default $NATS_PASSWORD)"
    )
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    tracing.configure("massgen-gateway")
    settings = GatewaySettings.from_env(
        nats_url=args.nats_url, workspace_root=args.workspace_root, final_dir=args.final_dir,
        call_timeout=args.call_timeout, stream_replicas=args.stream_replicas,
        memory_streams=args.memory_streams,
    )  # fmt: skip
    user, password = credentials_from_env(args.nats_user, args.nats_password)
    settings = settings.model_copy(
        update={"nats_url": nats_url_with_credentials(settings.nats_url, user, password)}
    )
    asyncio.run(_serve(settings, args.health_port))


if __name__ == "__main__":
    main()

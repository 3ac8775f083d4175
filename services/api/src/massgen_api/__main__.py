"""``massgen-api`` / ``python -m massgen_api``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import argparse

from massgen_kit import tracing
from massgen_kit.logsetup import configure_logging

from .settings import ApiSettings


def main(argv: list[str] | None = None) -> None:
    """Parse arguments (over ``MASSGEN_API_*`` / ``NATS_*``) and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="massgen-api", description=__doc__)
    parser.add_argument("--nats", dest="nats_url", help="NATS URL (default $NATS_URL)")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default 8080)")
    parser.add_argument("--teams-dir", help="folder of team YAML files")
    parser.add_argument("--memory-streams", action="store_true", help="in-memory streams")
    parser.add_argument(
        "--single-user", action="store_true",
        help="serve without bearer tokens (one machine only; default: refuse to start)",
    )  # fmt: skip
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--nats-user", default=None, help="NATS user (default $NATS_USER)")
    parser.add_argument(
        "--nats-password", default=None, help="NATS password (default $NATS_PASSWORD)"
    )
    args = parser.parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "nats_url": args.nats_url,
            "nats_user": args.nats_user,
            "nats_password": args.nats_password,
            "host": args.host,
            "port": args.port,
            "teams_dir": args.teams_dir,
            "log_level": args.log_level,
        }.items()
        if v is not None
    }
    if args.memory_streams:
        overrides["memory_streams"] = True
    if args.single_user:
        overrides["single_user"] = True
    settings = ApiSettings.from_env(**overrides)
    configure_logging(settings.log_level)
    tracing.configure("massgen-api")
    try:
        settings.check_auth()
    except ValueError as error:
        parser.exit(2, f"massgen-api: {error}\n")

    import uvicorn

    from .app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()

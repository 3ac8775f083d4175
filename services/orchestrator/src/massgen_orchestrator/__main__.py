"""``massgen-orchestrator``: run one orchestrator replica until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal

from massgen_proto.logsetup import configure_logging

from .service import OrchestratorService
from .settings import OrchestratorSettings


async def _serve(settings: OrchestratorSettings) -> None:
    service = OrchestratorService(settings)
    await service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.stop()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(prog="massgen-orchestrator", description=__doc__)
    parser.add_argument("--nats", dest="nats_url", help="NATS URL (default $NATS_URL)")
    parser.add_argument("--stream-replicas", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    values = {"stream_replicas": args.stream_replicas}
    if args.nats_url:
        values["nats_url"] = args.nats_url
    asyncio.run(_serve(OrchestratorSettings(**values)))


if __name__ == "__main__":
    main()

"""A real nats-server process for tests: the product's own launcher, per test folder.

server = start_nats_server(tmp_path)   # JetStream on, random port, store in tmp_path
... connect to server.url ...
server.stop()                          # terminate, then kill after a timeout
"""

from __future__ import annotations

from pathlib import Path

from massgen_cli.nats_server import NatsServer, NatsServerError

__all__ = ["NatsServer", "NatsServerError", "NatsServerHandle", "start_nats_server"]

NatsServerHandle = NatsServer


def start_nats_server(tmp_path: Path, *, port: int = 0) -> NatsServer:
    """Start nats-server with JetStream on 127.0.0.1, its store under ``tmp_path``."""
    return NatsServer(port=port, store_dir=Path(tmp_path) / "jetstream").start()

"""Gateway fixtures: a real gateway service on a real nats-server, real MCP servers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from gateway_helpers import TOOL_SERVER, GatewayClient
from massgen_gateway.service import GatewayService
from massgen_gateway.settings import GatewaySettings
from massgen_kit.jetstream import StreamSettings, ensure_runs_bucket


@pytest.fixture
def gateway_settings(nats_url: str, tmp_path: Path) -> GatewaySettings:
    (tmp_path / "home").mkdir()
    return GatewaySettings(
        nats_url=nats_url, workspace_root=str(tmp_path / "runs"), home=str(tmp_path / "home"),
        call_timeout=3.0, connect_timeout=30.0, breaker_threshold=3, breaker_cooldown=600,
        memory_streams=True,
    )  # fmt: skip


@pytest.fixture
async def gateway(gateway_settings: GatewaySettings) -> AsyncIterator[GatewayService]:
    service = GatewayService(gateway_settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def client(gateway: GatewayService, nats_url: str) -> AsyncIterator[GatewayClient]:
    nc = await nats.connect(nats_url)
    kv = await ensure_runs_bucket(nc.jetstream(), StreamSettings(memory=True))
    try:
        yield GatewayClient(nc, kv)
    finally:
        await nc.drain()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_tools() -> Iterator[str]:
    """tests/support/fakes/mcp_tool_server.py over streamable-http; yields its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(TOOL_SERVER), "http", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("MCP test server over HTTP did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""Gateway fixtures: a real gateway service on a real nats-server, real MCP servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from gateway_helpers import GatewayClient
from massgen_gateway.service import GatewayService
from massgen_gateway.settings import GatewaySettings
from massgen_kit.jetstream import StreamSettings, ensure_runs_bucket
from massgen_worker.service import WorkerService

from tests.integration.conftest import fast_worker_settings
from tests.support.fakes.mcp_http import serve_mcp_http


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


@pytest.fixture
def http_tools() -> Iterator[str]:
    """tests/support/fakes/mcp_tool_server.py over streamable-http; yields its URL."""
    with serve_mcp_http() as url:
        yield url


@pytest.fixture
async def openai_worker(stack) -> AsyncIterator[WorkerService]:
    """A worker for the ``openai`` backend type on the stack (generation and media tests)."""
    worker = WorkerService(stack.nats_url, ["openai"], fast_worker_settings())
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()

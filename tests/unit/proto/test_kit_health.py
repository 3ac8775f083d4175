"""The probe endpoint and NATS credential helper shared by service entry points."""

from __future__ import annotations

import asyncio

import pytest
from massgen_kit.health import HealthServer, credentials_from_env, nats_url_with_credentials


async def _get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body.strip()


async def test_probes_follow_readiness_and_stopping():
    ready = {"value": False}
    server = await HealthServer(0, ready=lambda: ready["value"], host="127.0.0.1").start()
    try:
        assert await _get(server.port, "/healthz") == (200, "ok")
        assert await _get(server.port, "/readyz") == (503, "not ready")
        ready["value"] = True
        assert await _get(server.port, "/readyz?verbose=1") == (200, "ready")
        server.stopping = True
        assert await _get(server.port, "/readyz") == (503, "not ready")
        assert (await _get(server.port, "/nope"))[0] == 404
    finally:
        await server.stop()
        await server.stop()  # twice is fine


def test_a_failing_check_is_unhealthy_not_a_crash():
    def boom() -> bool:
        raise RuntimeError("x")

    server = HealthServer(0, ready=boom, alive=boom)
    assert server.status("/healthz") == (503, "unhealthy")
    assert server.status("/readyz") == (503, "not ready")


def test_credentials_go_into_every_url():
    assert nats_url_with_credentials("nats://h:4222", "u", "p-_9") == "nats://u:p-_9@h:4222"
    assert nats_url_with_credentials("nats://old@h:1,nats://k:2", "u", "p") == (
        "nats://u:p@h:1,nats://u:p@k:2"
    )
    assert nats_url_with_credentials("nats://h:4222", None, None) == "nats://h:4222"


def test_credentials_the_url_cannot_carry_are_refused():
    with pytest.raises(ValueError, match="password contains"):
        nats_url_with_credentials("nats://h:4222", "u", "p@ss")
    with pytest.raises(ValueError, match="needs a user"):
        nats_url_with_credentials("nats://h:4222", None, "p")


def test_credentials_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("NATS_USER", "orchestrator")
    monkeypatch.setenv("NATS_PASSWORD", "secret")
    assert credentials_from_env(None, None) == ("orchestrator", "secret")
    assert credentials_from_env("other", None) == ("other", "secret")

"""Shared fixtures: a real nats-server, the scripted fake model, and no real providers.

- ``nats_server`` / ``nats_url``: a fresh nats-server with JetStream per test.
- ``fake_model``: the scripted OpenAI-protocol server (``.base_url``, ``.script(model,
  steps)``), checked with ``assert_complete()`` at teardown.
- ``no_real_providers`` (autouse): provider keys are sentinels and any name lookup of
  a non-local host fails the test.
- ``no_background_stack`` (autouse): ``MASSGEN_NO_DAEMON=1``, so no ``massgen`` a test
  runs starts the warm stack in the background.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from massgen_proto.providers import BACKENDS

from tests.support.fakes.openai_server import FakeOpenAIServer
from tests.support.nats_fixture import NatsServerHandle, start_nats_server

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}


@pytest.fixture
def nats_server(tmp_path) -> Iterator[NatsServerHandle]:
    """A nats-server (JetStream on, 127.0.0.1, random port) for this test only."""
    handle = start_nats_server(tmp_path)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def nats_url(nats_server: NatsServerHandle) -> str:
    """URL of this test's nats-server, e.g. ``nats://127.0.0.1:40123``."""
    return nats_server.url


@pytest.fixture
def fake_model() -> Iterator[FakeOpenAIServer]:
    """The scripted fake model; fails the test on unused steps or unexpected calls."""
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()
    server.assert_complete()


@pytest.fixture(autouse=True)
def no_background_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """No command a test runs starts the warm stack in the background (tests of it unset this)."""
    monkeypatch.setenv("MASSGEN_NO_DAEMON", "1")


@pytest.fixture(autouse=True)
def no_real_providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test that tries to reach a real model provider (or any non-local host)."""
    for backend in BACKENDS.values():
        if backend.api_key_env:
            monkeypatch.setenv(backend.api_key_env, f"sk-test-sentinel-{backend.api_key_env}")
    blocked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in _LOCAL_HOSTS and not str(name).startswith("127."):
            blocked.append(str(name))
            raise OSError(f"test tried to reach non-local host {name!r} (blocked by conftest)")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    yield
    if blocked:
        pytest.fail(f"test tried to reach real hosts: {sorted(set(blocked))}")

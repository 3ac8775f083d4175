"""Fake provider servers for the worker's exchanges through litellm: each fixture checks
at the end that every scripted response was asked for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakes.provider_servers import FakeAnthropicServer, FakeGeminiServer


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        yield server
    server.assert_complete()


@pytest.fixture
def gemini_server() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer() as server:
        yield server
    server.assert_complete()

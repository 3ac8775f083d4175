"""Fixtures of the HTTP API tests (helpers live in tests/support/api_stack.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api_stack import ApiStack, start_api_stack
from tests.support.fakes.openai_server import FakeOpenAIServer


@pytest.fixture
def api(tmp_path, nats_url: str, fake_model: FakeOpenAIServer) -> Iterator[ApiStack]:
    stack, stop = start_api_stack(tmp_path, nats_url, fake_model)
    try:
        yield stack
    finally:
        stop()

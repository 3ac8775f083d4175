"""Sounds by URL through the whole stack: the gateway fetches an ``audio_path`` URL (a real
HTTP server on loopback; this gateway lets uploads name loopback) and the model gets it
as the same ``input_audio`` part as a local file; a URL that is not a sound fails the run
naming the key."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from massgen_gateway.settings import GatewaySettings

from tests.integration.gateway.test_media_audio import MODEL, b64
from tests.support.fakes.openai_server import answer, text, vote
from tests.support.sample_files import FileSite, tiny_wav

pytestmark = pytest.mark.timeout(120)

TONE = tiny_wav(1.0, rate=16000)
FILES = {"alloy.wav": TONE, "page.html": b"<html>hello</html>"}


@pytest.fixture
def gateway_settings(gateway_settings: GatewaySettings) -> GatewaySettings:
    return gateway_settings.model_copy(update={"upload_url_private": True})


@pytest.fixture
def site() -> Iterator[str]:
    with FileSite(FILES) as files:
        yield files.origin


async def test_a_sound_by_url_reaches_the_model_as_input_audio(stack, gateway, site):
    stack.fake.script(MODEL, [answer("A tone."), vote("agent1"), text("A 440 Hz tone.")])
    config = stack.team([MODEL])
    config["agents"][0]["backend"]["upload_files"] = [{"audio_path": f"{site}/alloy.wav"}]
    summary = await stack.run("What do you hear?", config)
    assert summary.status == "completed", summary
    for request in stack.fake.requests_for(MODEL):
        task = [m for m in request.messages if m["role"] == "user"][-1]
        assert task["content"][1:] == [
            {"type": "input_audio", "input_audio": {"data": b64(TONE), "format": "wav"}}
        ]
    stack.fake.assert_complete()


async def test_a_url_that_is_not_a_sound_fails_the_run_naming_the_key(stack, gateway, site):
    config = stack.team([MODEL], max_agent_failures=1)
    config["agents"][0]["backend"]["upload_files"] = [{"audio_path": f"{site}/page.html"}]
    summary = await stack.run("What do you hear?", config)
    assert summary.status == "failed", summary
    words = json.dumps([e.model_dump() for e in stack.events if e.kind != "chunk"])
    assert "agents[0].backend.upload_files[0].audio_path" in words
    assert f"{site}/page.html: not a supported file (audio/mpeg, audio/wav)" in words
    assert stack.fake.requests_for(MODEL) == []

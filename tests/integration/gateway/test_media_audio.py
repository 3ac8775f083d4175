"""Sounds through the whole stack: ``upload_files`` ``audio_path`` entries reach the
model's user message as ``input_audio`` parts (the bytes, read from the gateway in
chunks, with OpenAI's format name), asserted on the request body the fake OpenAI server
received; a file that is not a WAV or MP3 by its content fails the run naming the key."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support.fakes.openai_server import answer, text, vote
from tests.support.sample_files import tiny_wav

pytestmark = pytest.mark.timeout(120)

MODEL = "gpt-4o-audio-preview"
"""An OpenAI model litellm's table lists as taking audio input."""


def mp3_like() -> bytes:
    """An ID3-tagged MP3 header and frames of silence (the fakes do not decode sound)."""
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    return b"ID3\x03\x00\x00\x00\x00\x00\x00" + frame * 20


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_uploaded_sounds_reach_every_turn_as_input_audio_parts(stack, gateway, tmp_path):
    tone = tiny_wav(20.0, rate=16000)  # ~640 KB: more than one 512 KiB chunk
    assert len(tone) > 512 * 1024
    (tmp_path / "tone.wav").write_bytes(tone)
    (tmp_path / "song.mp3").write_bytes(mp3_like())
    stack.fake.script(MODEL, [answer("A tone."), vote("agent1"), text("A 440 Hz tone.")])
    config = stack.team([MODEL])
    config["agents"][0]["backend"]["upload_files"] = [
        {"audio_path": str(tmp_path / "tone.wav")},
        {"audio_path": str(tmp_path / "song.mp3")},
    ]
    summary = await stack.run("What do you hear?", config)
    assert summary.status == "completed", summary
    requests = stack.fake.requests_for(MODEL)
    assert len(requests) == 3
    for request in requests:  # two coordination calls and the presentation
        task = [m for m in request.messages if m["role"] == "user"][-1]
        first, *sounds = task["content"]
        assert first["type"] == "text" and "What do you hear?" in first["text"]
        assert sounds == [
            {"type": "input_audio", "input_audio": {"data": b64(tone), "format": "wav"}},
            {"type": "input_audio", "input_audio": {"data": b64(mp3_like()), "format": "mp3"}},
        ]
    stack.fake.assert_complete()


async def test_a_sound_that_is_not_wav_or_mp3_fails_the_run_naming_key(stack, gateway, tmp_path):
    (tmp_path / "fake.wav").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # a PNG by content
    config = stack.team([MODEL], max_agent_failures=1)
    config["agents"][0]["backend"]["upload_files"] = [{"audio_path": str(tmp_path / "fake.wav")}]
    summary = await stack.run("What do you hear?", config)
    assert summary.status == "failed", summary
    words = json.dumps([e.model_dump() for e in stack.events if e.kind != "chunk"])
    assert "agents[0].backend.upload_files[0].audio_path" in words
    assert "fake.wav: not a supported media file (audio/mpeg, audio/wav), by its content" in words
    assert stack.fake.requests_for(MODEL) == []  # the model was never called

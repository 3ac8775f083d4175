"""Images through the whole stack: orchestrator, worker, gateway, the scripted fake model.

- ``upload_files`` images reach the model's user message as image parts (a local file as
  a ``data:`` URL, read from the gateway in chunks; a URL as written), in coordination
  and presentation turns; a missing or oversize file fails the run with a message
  naming the config key and the file;
- ``read_multimodal_files`` shows the model an image of its roots (a user message of
  image parts after the tool result), under the same path permissions as every tool;
- ``enable_image_generation``: the model's ``generate_image`` call reaches the provider's
  images API (``/v1/images/generations``), the picture is saved in the agent's workspace,
  snapshotted under its label and copied into the final workspace.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import zlib
from pathlib import Path

import pytest

from tests.support.fakes.openai_server import answer, text, tool_call, vote

pytestmark = pytest.mark.timeout(120)

READ_IMAGES = "mcp__workspace__read_multimodal_files"


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A real PNG of ``width`` x ``height`` noisy RGB pixels (does not compress away)."""
    rows = b"".join(
        b"\x00" + bytes((x * 7 + y * 13 + seed) * 2654435761 % 251 for x in range(width * 3))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 0))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def image_urls(message: dict) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def wait_for(path: Path) -> None:
    for _ in range(200):
        if await asyncio.to_thread(path.exists):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def test_uploaded_images_reach_every_turn_as_image_parts(stack, gateway, tmp_path):
    picture = png(400, 300)  # ~360 KB raw: more than one chunk
    assert len(picture) > 512 * 1024 * 0.6
    big = png(500, 400, seed=3)  # > 512 KiB: read in two chunks
    assert len(big) > 512 * 1024
    (tmp_path / "pic.png").write_bytes(picture)
    (tmp_path / "big.png").write_bytes(big)
    url = "https://images.example.org/cat.jpg"
    stack.fake.script("gpt-4o", [answer("A noisy picture."), vote("agent1"), text("Noise.")])
    config = stack.team(["gpt-4o"])
    config["agents"][0]["backend"]["upload_files"] = [
        {"image_path": str(tmp_path / "pic.png")},
        {"image_path": url},
        {"image_path": str(tmp_path / "big.png")},
    ]
    summary = await stack.run("What is in the pictures?", config)
    assert summary.status == "completed", summary
    requests = stack.fake.requests_for("gpt-4o")
    assert len(requests) == 3
    for request in requests:  # two coordination calls and the presentation
        task = [m for m in request.messages if m["role"] == "user"][-1]
        assert task["content"][0]["type"] == "text"
        assert "What is in the pictures?" in task["content"][0]["text"]
        assert image_urls(task) == [data_url(picture), url, data_url(big)]
    stack.fake.assert_complete()


async def test_a_missing_upload_fails_the_run_naming_key_and_file(stack, gateway, tmp_path):
    config = stack.team(["gpt-4o"], max_agent_failures=1)
    missing = tmp_path / "nowhere.png"
    config["agents"][0]["backend"]["upload_files"] = [{"image_path": str(missing)}]
    summary = await stack.run("Describe it.", config)
    assert summary.status == "failed", summary
    failed = stack.kinds("agent_error") + stack.kinds("agent_failed") + stack.kinds("run_finished")
    words = json.dumps([e.model_dump() for e in failed])
    assert "agents[0].backend.upload_files[0].image_path" in words
    assert str(missing) in words and "No such file" in words
    assert stack.fake.requests_for("gpt-4o") == []  # the model was never called


async def test_an_oversize_upload_is_refused_with_the_limit(stack, gateway, tmp_path):
    (tmp_path / "pic.png").write_bytes(png(64, 64))
    config = stack.team(["gpt-4o"], max_agent_failures=1)
    backend = config["agents"][0]["backend"]
    backend["upload_files"] = [{"image_path": str(tmp_path / "pic.png")}]
    backend["media_max_file_size_mb"] = 0.001  # 1 KiB
    summary = await stack.run("Describe it.", config)
    assert summary.status == "failed"
    words = json.dumps([e.model_dump() for e in stack.events if e.kind != "chunk"])
    assert "is over the limit of 0.0 MB (backend.media_max_file_size_mb)" in words
    assert "pic.png" in words


async def test_read_multimodal_files_shows_the_model_an_image(stack, gateway, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    picture = png(32, 16)
    (shots / "chart.png").write_bytes(picture)
    (shots / "notes.txt").write_text("not an image")
    stack.fake.script("gpt-4o", [
        tool_call(READ_IMAGES, {"paths": [str(shots / "chart.png")]}),
        tool_call(READ_IMAGES, {"paths": ["/etc/hostname"]}),
        tool_call(READ_IMAGES, {"paths": [str(shots / "notes.txt")]}),
        answer("A chart."), vote("agent1"), text("A chart."),
    ])  # fmt: skip
    config = stack.team(["gpt-4o"])
    config["orchestrator"]["context_paths"] = [{"path": str(shots), "permission": "read"}]
    summary = await stack.run("What does the chart show?", config)
    assert summary.status == "completed", summary
    first, second, third, fourth = stack.fake.requests_for("gpt-4o")[:4]
    assert READ_IMAGES in {t["function"]["name"] for t in first.tools}
    tool_result, shown = second.messages[-2], second.messages[-1]
    assert tool_result["role"] == "tool"
    assert tool_result["content"].startswith("Showing 1 image(s)")
    assert "(image/png, " in tool_result["content"]
    assert shown["role"] == "user"
    assert shown["content"][0] == {
        "type": "text", "text": f"The images you asked to see: {shots / 'chart.png'}"}  # fmt: skip
    assert image_urls(shown) == [data_url(picture)]
    denied = third.messages[-1]  # no image message after a denial
    assert denied["role"] == "tool" and "Permission denied" in denied["content"]
    assert "outside_roots" in denied["content"]
    not_image = fourth.messages[-1]
    assert not_image["role"] == "tool" and "not a supported media file" in not_image["content"]
    assert [d.rule for d in stack.kinds("tool_denied")] == ["outside_roots"]


async def test_a_model_without_vision_is_not_offered_read_multimodal_files(
    stack, gateway, tmp_path
):
    stack.fake.script("m1", [answer("x"), vote("agent1"), text("x")])
    config = stack.team(["m1"])
    config["agents"][0]["backend"]["cwd"] = "ws"
    assert (await stack.run("q?", config)).status == "completed"
    offered = {t["function"]["name"] for t in stack.fake.requests_for("m1")[0].tools}
    assert "mcp__workspace__read_file" in offered and READ_IMAGES not in offered


async def test_generated_images_are_saved_snapshotted_and_kept(
    stack, gateway, openai_worker, tmp_path
):
    picture = png(600, 400, seed=5)  # > 512 KiB: written in two chunks
    stack.fake.script_media("images", "gpt-image-1", [picture])
    stack.fake.script("gpt-4o", [
        tool_call("generate_image", {"prompt": "a red fox in snow", "path": "art/fox"}),
        answer("I drew agent1/art/fox.png."), vote("agent1"),
        text("Here is the fox: agent1/art/fox.png"),
    ])  # fmt: skip
    config = stack.team(["gpt-4o"])
    backend = config["agents"][0]["backend"]
    backend.update(type="openai", cwd="ws", enable_image_generation=True)
    summary = await stack.run("Draw a fox.", config)
    assert summary.status == "completed", summary
    stack.fake.assert_complete()

    first = stack.fake.requests_for("gpt-4o")[0]
    assert "generate_image" in {t["function"]["name"] for t in first.tools}
    assert stack.fake.media_requests == [
        ("images", {"model": "gpt-image-1", "prompt": "a red fox in snow", "n": 1})
    ]
    result = stack.fake.requests_for("gpt-4o")[1].messages[-1]
    assert result["role"] == "tool"
    assert result["content"] == (
        f"Saved the generated image to art/fox.png in your workspace ({len(picture)} bytes, "
        "image/png). In your answer, refer to it as agent1/art/fox.png."
    )
    run_dir = tmp_path / "runs" / stack.events[0].run_id
    assert (run_dir / "ws" / "art" / "fox.png").read_bytes() == picture
    assert (run_dir / "reference" / "agent1" / "art" / "fox.png").read_bytes() == picture
    await wait_for(run_dir / "final_workspace" / "art" / "fox.png")
    assert (run_dir / "final_workspace" / "art" / "fox.png").read_bytes() == picture


async def test_generated_speech_is_saved_as_mp3(stack, gateway, openai_worker, tmp_path):
    speech = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40
    stack.fake.script_media("speech", "gpt-4o-mini-tts", [speech])
    stack.fake.script("gpt-4o", [
        tool_call("generate_audio", {"text": "Hello from the team.", "voice": "nova"}),
        answer("Said hello in agent1/generated/speech_1_1.mp3."), vote("agent1"),
        text("agent1/generated/speech_1_1.mp3"),
    ])  # fmt: skip
    config = stack.team(["gpt-4o"])
    config["agents"][0]["backend"].update(type="openai", cwd="ws", enable_audio_generation=True)
    summary = await stack.run("Say hello.", config)
    assert summary.status == "completed", summary
    stack.fake.assert_complete()
    offered = {t["function"]["name"] for t in stack.fake.requests_for("gpt-4o")[0].tools}
    assert "generate_audio" in offered and "generate_image" not in offered
    route, body = stack.fake.media_requests[0]
    assert route == "speech"
    assert {k: body[k] for k in ("model", "input", "voice")} == {
        "model": "gpt-4o-mini-tts", "input": "Hello from the team.", "voice": "nova"}  # fmt: skip
    run_dir = tmp_path / "runs" / stack.events[0].run_id
    assert (run_dir / "ws" / "generated" / "speech_1_1.mp3").read_bytes() == speech
    result = stack.fake.requests_for("gpt-4o")[1].messages[-1]["content"]
    assert result.startswith("Saved the generated audio to generated/speech_1_1.mp3")


async def test_a_generation_refused_by_the_provider_reaches_the_model_as_an_error(
    stack, gateway, openai_worker, tmp_path
):
    # No image scripted: the fake answers the images request with HTTP 500.
    stack.fake.script("gpt-4o", [
        tool_call("generate_image", {"prompt": "a fox"}),
        answer("Could not draw."), vote("agent1"), text("No picture."),
    ])  # fmt: skip
    config = stack.team(["gpt-4o"])
    config["agents"][0]["backend"].update(type="openai", cwd="ws", enable_image_generation=True)
    summary = await stack.run("Draw a fox.", config)
    assert summary.status == "completed", summary
    result = stack.fake.requests_for("gpt-4o")[1].messages[-1]
    assert result["role"] == "tool"
    assert result["content"].startswith("Error: image generation failed: ")
    assert "unexpected model call" in result["content"]
    assert {route for route, _ in stack.fake.media_requests} == {"images"}
    stack.fake.errors.clear()  # the refused images request was this test's point
    run_dir = tmp_path / "runs" / stack.events[0].run_id
    assert not (run_dir / "ws" / "generated").exists()

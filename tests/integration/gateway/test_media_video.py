"""Videos through the whole stack: orchestrator, worker, gateway, the scripted fake model.

- ``upload_files`` ``video_path`` entries reach a Qwen VL model as a ``video_url`` part
  and a vision model without video input as evenly spaced JPEG frames (told apart by
  colour), read from the gateway in chunks; bytes that are no video by their content,
  or a file over the size limit, fail the run naming the key;
- ``read_multimodal_files`` shows a context-path video as frames, and refuses a video
  outside the agent's paths;
- ``enable_video_generation``: the model's ``generate_video`` call creates a job on the
  provider's videos API, the worker polls it and saves the MP4 in the agent's
  workspace, snapshotted under its label and copied into the final workspace; a failed
  job reaches the model as a tool error.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.gateway.test_media import wait_for
from tests.support.fakes.openai_server import answer, text, tool_call, vote
from tests.support.fakes.openai_videos import FakeOpenAIVideoServer
from tests.support.video_files import colour_of, noisy_video, tiny_video

pytestmark = pytest.mark.timeout(120)

QWEN = "qwen3-vl-30b-a3b-thinking"
READ_FILES = "mcp__workspace__read_multimodal_files"
FRAMES = ["red"] * 3 + ["green"] * 2 + ["blue"] * 3
"""The eight frames a model is shown of ``tiny_video()``, by colour."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def frame_colours(message: dict) -> list[str]:
    """The colours of the JPEG frames among a message's image parts."""
    prefix = "data:image/jpeg;base64,"
    urls = [p["image_url"]["url"] for p in message["content"] if p.get("type") == "image_url"]
    assert all(u.startswith(prefix) for u in urls), urls
    return [colour_of(base64.b64decode(u.removeprefix(prefix))) for u in urls]


async def test_an_uploaded_video_reaches_a_qwen_vl_model_as_a_video_url_part(
    stack, gateway, tmp_path
):
    clip = noisy_video(16, size=(480, 360))
    assert len(clip) > 512 * 1024  # read from the gateway in two chunks or more
    (tmp_path / "clip.mp4").write_bytes(clip)
    stack.fake.script(QWEN, [answer("Colours."), vote("agent1"), text("Colours.")])
    config = stack.team([QWEN])
    config["agents"][0]["backend"]["upload_files"] = [{"video_path": str(tmp_path / "clip.mp4")}]
    summary = await stack.run("What happens in the video?", config)
    assert summary.status == "completed", summary
    requests = stack.fake.requests_for(QWEN)
    assert len(requests) == 3
    for request in requests:  # two coordination calls and the presentation
        task = [m for m in request.messages if m["role"] == "user"][-1]
        assert task["content"][1:] == [
            {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{b64(clip)}"}}
        ]
    stack.fake.assert_complete()


async def test_an_uploaded_video_reaches_a_vision_model_as_frames(stack, gateway, tmp_path):
    (tmp_path / "clip.mp4").write_bytes(tiny_video())
    stack.fake.script("gpt-4o", [answer("Red, green, blue."), vote("agent1"), text("RGB.")])
    config = stack.team(["gpt-4o"])
    config["agents"][0]["backend"]["upload_files"] = [{"video_path": str(tmp_path / "clip.mp4")}]
    summary = await stack.run("What happens in the video?", config)
    assert summary.status == "completed", summary
    for request in stack.fake.requests_for("gpt-4o"):
        task = [m for m in request.messages if m["role"] == "user"][-1]
        assert frame_colours(task) == FRAMES
    stack.fake.assert_complete()


@pytest.mark.parametrize(
    ("content", "limit_mb", "says"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(64), None,
         "fake.mp4: not a supported media file (video/mp4, video/quicktime, video/webm), "
         "by its content"),
        (tiny_video(), 0.0005, "is over the limit of 0.0 MB (backend.media_max_file_size_mb)"),
    ],
    ids=["not-a-video", "oversize"],
)  # fmt: skip
async def test_a_bad_video_upload_fails_the_run_naming_the_key(
    stack, gateway, tmp_path, content, limit_mb, says
):
    (tmp_path / "fake.mp4").write_bytes(content)
    config = stack.team([QWEN], max_agent_failures=1)
    backend = config["agents"][0]["backend"]
    backend["upload_files"] = [{"video_path": str(tmp_path / "fake.mp4")}]
    if limit_mb is not None:
        backend["media_max_file_size_mb"] = limit_mb
    summary = await stack.run("What happens?", config)
    assert summary.status == "failed", summary
    words = json.dumps([e.model_dump() for e in stack.events if e.kind != "chunk"])
    assert "agents[0].backend.upload_files[0].video_path" in words
    assert says in words and "fake.mp4" in words
    assert stack.fake.requests_for(QWEN) == []  # the model was never called


async def test_read_multimodal_files_shows_a_video_as_frames_within_the_paths(
    stack, gateway, tmp_path
):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "rgb.mp4").write_bytes(tiny_video())
    (tmp_path / "elsewhere.mp4").write_bytes(tiny_video())  # not under any of its paths
    stack.fake.script("gpt-4o", [
        tool_call(READ_FILES, {"paths": [str(clips / "rgb.mp4")]}),
        tool_call(READ_FILES, {"paths": [str(tmp_path / "elsewhere.mp4")]}),
        answer("RGB."), vote("agent1"), text("RGB."),
    ])  # fmt: skip
    config = stack.team(["gpt-4o"])
    config["orchestrator"]["context_paths"] = [{"path": str(clips), "permission": "read"}]
    summary = await stack.run("What does the clip show?", config)
    assert summary.status == "completed", summary
    second, third = stack.fake.requests_for("gpt-4o")[1:3]
    tool_result, shown = second.messages[-2], second.messages[-1]
    assert tool_result["role"] == "tool" and "(video/mp4, " in tool_result["content"]
    assert shown["content"][0] == {
        "type": "text", "text": f"The files you asked to see: {clips / 'rgb.mp4'}"}  # fmt: skip
    assert frame_colours(shown) == FRAMES
    denied = third.messages[-1]  # no frames after a denial
    assert denied["role"] == "tool" and "Permission denied" in denied["content"]
    assert "outside_roots" in denied["content"]
    stack.fake.assert_complete()


def film_config(stack, server: FakeOpenAIVideoServer) -> dict:
    config = stack.team(["gpt-4o"])
    config["agents"][0]["backend"].update(
        type="openai", base_url=server.base_url, cwd="ws", enable_video_generation=True
    )
    return config


async def test_a_generated_video_is_saved_snapshotted_and_kept(
    stack, gateway, openai_worker, tmp_path
):
    clip = tiny_video([(200, 30, 30)] * 8)
    with FakeOpenAIVideoServer() as server:
        server.script_video(content=clip, polls=0)
        server.script("gpt-4o", [
            tool_call("generate_video", {"prompt": "a red fox in snow", "seconds": "8",
                                         "size": "1280x720", "path": "film/fox"}),
            answer("I filmed agent1/film/fox.mp4."), vote("agent1"),
            text("Here is the fox: agent1/film/fox.mp4"),
        ])  # fmt: skip
        summary = await stack.run("Film a fox.", film_config(stack, server))
        assert summary.status == "completed", summary
        server.assert_complete()
        requests = server.requests_for("gpt-4o")
        calls = server.video_calls
    assert "generate_video" in {t["function"]["name"] for t in requests[0].tools}
    assert calls == [
        ("POST", "/v1/videos", {"model": "sora-2", "prompt": "a red fox in snow",
                                "seconds": "8", "size": "1280x720"}),
        ("GET", "/v1/videos/video_1", None),
        ("GET", "/v1/videos/video_1/content", None),
    ]  # fmt: skip
    assert requests[1].messages[-1]["content"] == (
        f"Saved the generated video to film/fox.mp4 in your workspace ({len(clip)} bytes, "
        "video/mp4). In your answer, refer to it as agent1/film/fox.mp4."
    )
    run_dir = tmp_path / "runs" / stack.events[0].run_id
    assert (run_dir / "ws" / "film" / "fox.mp4").read_bytes() == clip
    assert (run_dir / "reference" / "agent1" / "film" / "fox.mp4").read_bytes() == clip
    await wait_for(run_dir / "final_workspace" / "film" / "fox.mp4")
    assert (run_dir / "final_workspace" / "film" / "fox.mp4").read_bytes() == clip


async def test_a_failed_video_job_reaches_the_model_as_an_error(
    stack, gateway, openai_worker, tmp_path
):
    with FakeOpenAIVideoServer() as server:
        server.script_video(polls=0, error="content policy violation")
        server.script("gpt-4o", [
            tool_call("generate_video", {"prompt": "a fox"}),
            answer("Could not film."), vote("agent1"), text("No video."),
        ])  # fmt: skip
        summary = await stack.run("Film a fox.", film_config(stack, server))
        assert summary.status == "completed", summary
        server.assert_complete()
        result = server.requests_for("gpt-4o")[1].messages[-1]
    assert result == {
        **result,
        "role": "tool",
        "content": "Error: video generation failed: content policy violation",
    }
    run_dir = tmp_path / "runs" / stack.events[0].run_id
    assert not (run_dir / "ws" / "generated").exists()

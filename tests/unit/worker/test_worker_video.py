"""Videos in and out of a model call: what litellm sends each provider (fake servers on
loopback), the frames a model without video input is shown, and ``generate_video``'s
create / status / content calls with its failures.

The video is real (``tests/support/video_files``: four red, four green, four blue
frames), so the frames test can tell which frames were taken by their colour.
"""

from __future__ import annotations

import base64

import pytest
from massgen_proto.messages import BackendSpec, TurnRequest
from massgen_worker.llm import LiteLLMModel
from massgen_worker.media import MediaError, with_parts
from massgen_worker.video import sample_frames, video_parts
from massgen_worker.video_generation import VIDEO_TOOL, generate_video, video_tools

from tests.support.fakes import FakeOpenAIServer, text
from tests.support.fakes.openai_videos import FakeOpenAIVideoServer
from tests.support.fakes.provider_servers import gemini
from tests.support.video_files import colour_of, tiny_video

VIDEO = tiny_video()
VIDEO_B64 = base64.b64encode(VIDEO).decode()
NOT_A_VIDEO = b"\x00\x00\x00\x18ftypisom" + b"these bytes are no video at all" * 8


def task(parts: list[dict]) -> list[dict]:
    messages = [{"role": "user", "content": "What happens in the video?"}]
    with_parts(messages[0], parts)
    return messages


async def call(backend: BackendSpec, messages: list[dict]) -> None:
    async for _ in LiteLLMModel(backend).stream(messages, None, None):
        pass


# -- frames -------------------------------------------------------------------------------


def test_frames_are_evenly_spaced_over_the_video():
    frames = sample_frames(VIDEO, 3, 768)
    assert [colour_of(f) for f in frames] == ["red", "green", "blue"]
    assert all(f.startswith(b"\xff\xd8\xff") for f in frames)  # JPEG files
    eight = sample_frames(VIDEO, 8, 768)
    assert [colour_of(f) for f in eight] == ["red"] * 3 + ["green"] * 2 + ["blue"] * 3


def test_frames_are_scaled_down_to_the_longest_side():
    big = tiny_video([(0, 0, 255)] * 2, size=(320, 240))
    (frame,) = sample_frames(big, 1, 64)
    # JPEG's SOF0 segment holds height then width.
    at = frame.index(b"\xff\xc0")
    height, width = int.from_bytes(frame[at + 5 : at + 7]), int.from_bytes(frame[at + 7 : at + 9])
    assert (width, height) == (64, 48)


def test_bytes_that_are_no_video_are_refused_by_name():
    with pytest.raises(MediaError, match=r"clip\.mp4: not a video the decoder can read"):
        sample_frames(NOT_A_VIDEO, 8, 768, "clip.mp4")


# -- what each provider receives ----------------------------------------------------------


async def test_a_qwen_vl_model_gets_the_video_as_a_video_url_part():
    model = "qwen3-vl-30b-a3b-thinking"
    parts = await video_parts("chatcompletion", model, "clip.mp4", "video/mp4", VIDEO)
    with FakeOpenAIServer() as server:
        server.script(model, [text("Red, then green, then blue.")])
        backend = BackendSpec(type="chatcompletion", model=model, base_url=server.base_url)
        await call(backend, task(parts))
        server.assert_complete()
        body = server.requests[0].body
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What happens in the video?"},
        {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{VIDEO_B64}"}},
    ]}]  # fmt: skip


async def test_gemini_gets_the_video_as_inline_data(gemini_server):
    model = "gemini-2.5-flash"
    parts = await video_parts("gemini", model, "clip.mp4", "video/mp4", VIDEO)
    gemini_server.script([gemini.reply(gemini.text("Three colours."))])
    backend = BackendSpec(type="gemini", model=model, api_key="k", base_url=gemini_server.base_url)
    await call(backend, task(parts))
    assert gemini_server.requests[0].body["contents"] == [{"role": "user", "parts": [
        {"text": "What happens in the video?"},
        {"inline_data": {"data": VIDEO_B64, "mime_type": "video/mp4"}},
    ]}]  # fmt: skip


async def test_a_vision_model_without_video_input_gets_frames_as_images():
    parts = await video_parts("openai", "gpt-4o", "clip.mp4", "video/mp4", VIDEO)
    with FakeOpenAIServer() as server:
        server.script("gpt-4o", [text("Colours.")])
        backend = BackendSpec(type="openai", model="gpt-4o", api_key="k", base_url=server.base_url)
        await call(backend, task(parts))
        body = server.requests[0].body
    content = body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What happens in the video?"}
    assert {p["type"] for p in content[1:]} == {"image_url"} and len(content) == 9
    frames = [
        base64.b64decode(p["image_url"]["url"].removeprefix("data:image/jpeg;base64,"))
        for p in content[1:]
    ]
    assert [colour_of(f) for f in frames] == ["red"] * 3 + ["green"] * 2 + ["blue"] * 3


async def test_a_model_without_vision_cannot_be_shown_a_video():
    with pytest.raises(MediaError, match="takes neither video nor images"):
        await video_parts("chatcompletion", "llama-3-8b", "clip.mp4", "video/mp4", VIDEO)


# -- generate_video -----------------------------------------------------------------------


def turn(server: FakeOpenAIServer) -> TurnRequest:
    backend = BackendSpec(type="openai", model="gpt-4o", api_key="k", base_url=server.base_url)
    return TurnRequest(
        run_id="r1", turn_id="t1", agent_id="a", label="agent1", phase="coordinate", number=1,
        answer_set_version=0, backend=backend, messages=[], token="tok", deadline=0.0,
    )  # fmt: skip


async def no_gateway(request):  # a failed job must not write anything
    raise AssertionError(f"unexpected file request {request.kind}")


def test_the_tool_is_offered_only_when_switched_on():
    assert video_tools(False) == []
    (tool,) = video_tools(True)
    assert tool["function"]["name"] == VIDEO_TOOL
    assert tool["function"]["parameters"]["required"] == ["prompt"]


async def test_a_failed_job_is_a_tool_error_with_the_providers_reason():
    with FakeOpenAIVideoServer() as server:
        server.script_video(polls=1, error="the prompt was refused by moderation")
        with pytest.raises(MediaError) as caught:
            await generate_video({"prompt": "a fox", "seconds": "4"}, turn(server), no_gateway,
                                 1, poll=0.01)  # fmt: skip
        server.assert_complete()
        calls = server.video_calls
    assert str(caught.value) == "video generation failed: the prompt was refused by moderation"
    assert calls == [
        ("POST", "/v1/videos", {"model": "sora-2", "prompt": "a fox", "seconds": "4"}),
        ("GET", "/v1/videos/video_1", None),
        ("GET", "/v1/videos/video_1", None),
    ]


async def test_a_job_still_running_after_the_wait_is_a_timeout_error():
    with FakeOpenAIVideoServer() as server:
        server.script_video(content=VIDEO, polls=10_000)
        with pytest.raises(MediaError, match=r"timed out: the job was still in_progress after"):
            await generate_video({"prompt": "a fox"}, turn(server), no_gateway, 1,
                                 poll=0.05, wait=0.3)  # fmt: skip
        statuses = [c for c in server.video_calls if c[0] == "GET"]
    assert 2 <= len(statuses) <= 8  # polled until the deadline, then stopped
    assert all(path == "/v1/videos/video_1" for _, path, _ in statuses)  # never downloaded


async def test_a_download_that_is_not_an_mp4_is_not_saved():
    with FakeOpenAIVideoServer() as server:
        server.script_video(content=b"<html>an error page</html>", polls=0)
        with pytest.raises(MediaError, match="not an MP4 file; nothing was saved"):
            await generate_video({"prompt": "a fox"}, turn(server), no_gateway, 1, poll=0.01)
        assert server.video_calls[-1][:2] == ("GET", "/v1/videos/video_1/content")

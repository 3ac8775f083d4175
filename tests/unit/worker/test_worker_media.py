"""Images in a model call: what litellm sends each provider (fake servers on loopback).

The worker writes OpenAI ``image_url`` parts (``media``); litellm translates them for
Anthropic (``image`` blocks) and Gemini (``inline_data``). Each test asserts the request
body the provider received, byte for byte where the image is concerned.
"""

from __future__ import annotations

import base64

import pytest
from massgen_proto.messages import BackendSpec
from massgen_worker.generation import _target, generation_tools
from massgen_worker.llm import LiteLLMModel
from massgen_worker.media import MediaError, data_url, image_part, with_parts

from tests.support.fakes import FakeOpenAIServer, text
from tests.support.fakes.provider_servers import (
    anthropic,
    gemini,
)

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()
URL = "https://images.example.org/cat.jpg"


def task(*parts: dict) -> list[dict]:
    messages = [
        {"role": "system", "content": "You are agent1."},
        {"role": "user", "content": "What is in the picture?"},
    ]
    with_parts(messages[1], list(parts))
    return messages


async def call(backend: BackendSpec, messages: list[dict]) -> None:
    async for _ in LiteLLMModel(backend).stream(messages, None, None):
        pass


# -- pure ----------------------------------------------------------------------------------


def test_parts_follow_the_text_of_a_message():
    message = {"role": "user", "content": "Look."}
    with_parts(message, [image_part(URL)])
    assert message["content"] == [
        {"type": "text", "text": "Look."},
        {"type": "image_url", "image_url": {"url": URL}},
    ]
    with_parts(message, [image_part("data:image/png;base64,AAAA")])
    assert len(message["content"]) == 3  # parts already there are kept
    empty = {"role": "user", "content": ""}
    with_parts(empty, [image_part(URL)])
    assert empty["content"] == [{"type": "image_url", "image_url": {"url": URL}}]


def test_data_url_is_the_base64_of_the_bytes():
    assert data_url("image/png", PNG) == f"data:image/png;base64,{PNG_B64}"


def test_generated_files_go_to_a_relative_path_with_the_right_suffix():
    assert _target(None, "image_1_1", "image/png") == "generated/image_1_1.png"
    assert _target("art/cat", "x", "image/png") == "art/cat.png"
    assert _target("art/cat.png", "x", "image/png") == "art/cat.png"
    assert _target("./a/../b.jpg", "x", "image/jpeg") == "b.jpg"
    assert _target("talk", "x", "audio/mpeg") == "talk.mp3"
    for outside in ("/etc/cat.png", "../cat.png", "~/cat.png", "a/../../cat.png", "a\\b.png"):
        with pytest.raises(MediaError, match="relative path inside your workspace"):
            _target(outside, "x", "image/png")


def test_generation_tools_follow_the_switches():
    assert generation_tools(False, False) == []
    names = [t["function"]["name"] for t in generation_tools(True, True)]
    assert names == ["generate_image", "generate_audio"]
    image = generation_tools(True, False)[0]["function"]["parameters"]
    assert image["required"] == ["prompt"] and image["additionalProperties"] is False


# -- what each provider receives ----------------------------------------------------------


async def test_openai_gets_the_image_url_parts_as_written():
    with FakeOpenAIServer() as server:
        server.script("gpt-4o", [text("A red dot.")])
        backend = BackendSpec(type="openai", model="gpt-4o", api_key="k", base_url=server.base_url)
        await call(backend, task(image_part(data_url("image/png", PNG)), image_part(URL)))
        server.assert_complete()
        body = server.requests[0].body
    assert body["messages"][1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in the picture?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            {"type": "image_url", "image_url": {"url": URL}},
        ],
    }


async def test_claude_gets_base64_and_url_image_blocks(anthropic_server):
    anthropic_server.script([anthropic.reply(anthropic.text("A red dot."))])
    backend = BackendSpec(
        type="claude", model="claude-sonnet-4-5", api_key="k", base_url=anthropic_server.base_url
    )
    await call(backend, task(image_part(data_url("image/png", PNG)), image_part(URL)))
    body = anthropic_server.requests[0].body
    assert body["system"] == [{"type": "text", "text": "You are agent1."}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in the picture?"},
                {"type": "image", "source": {
                    "type": "base64", "media_type": "image/png", "data": PNG_B64}},
                {"type": "image", "source": {"type": "url", "url": URL}},
            ],
        }
    ]  # fmt: skip


async def test_gemini_gets_inline_data(gemini_server):
    gemini_server.script([gemini.reply(gemini.text("A red dot."))])
    backend = BackendSpec(
        type="gemini", model="gemini-2.5-flash", api_key="k", base_url=gemini_server.base_url
    )
    await call(backend, task(image_part(data_url("image/png", PNG))))
    body = gemini_server.requests[0].body
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is in the picture?"},
                {"inline_data": {"data": PNG_B64, "mime_type": "image/png"}},
            ],
        }
    ]


async def test_claude_reads_tool_images_in_the_turn_of_the_tool_result(anthropic_server):
    # A tool message holds text only: the worker puts the images in a user message
    # right after it, which litellm joins to the tool result's user turn.
    anthropic_server.script([anthropic.reply(anthropic.text("It is a dot."))])
    messages = task() + [
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "toolu_1", "type": "function", "function": {
                "name": "mcp__workspace__read_multimodal_files",
                "arguments": '{"paths": ["dot.png"]}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Showing 1 image(s): dot.png"},
        {"role": "user", "content": [
            {"type": "text", "text": "The images you asked to see: dot.png"},
            image_part(data_url("image/png", PNG))]},
    ]  # fmt: skip
    backend = BackendSpec(
        type="claude", model="claude-sonnet-4-5", api_key="k", base_url=anthropic_server.base_url
    )
    await call(backend, messages)
    last = anthropic_server.requests[0].body["messages"][-1]
    assert last["role"] == "user"
    assert [block["type"] for block in last["content"]] == ["tool_result", "text", "image"]
    assert last["content"][0]["tool_use_id"] == "toolu_1"
    assert last["content"][2]["source"] == {
        "type": "base64", "media_type": "image/png", "data": PNG_B64}  # fmt: skip

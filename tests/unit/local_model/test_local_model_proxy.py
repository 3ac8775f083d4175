"""The proxy against a scripted llama.cpp stand-in (no model, no network)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from massgen_local_model.proxy import build_app

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "new_answer",
            "parameters": {
                "type": "object",
                "properties": {"content": {"type": "string"}},
                "required": ["content"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "vote",
            "parameters": {
                "type": "object",
                "properties": {"agent_id": {"type": "string", "enum": ["agent1"]}},
                "required": ["agent_id"],
            },
        },
    },
]
MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]


class FakeLlama:
    """Answers each chat request with the next scripted text; records what it got."""

    def __init__(self, texts: list[str], finish: str = "stop") -> None:
        self.texts = list(texts)
        self.finish = finish
        self.requests: list[dict[str, Any]] = []

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        text = self.texts.pop(0)
        base = {"id": "chatcmpl-1", "created": 1, "model": "m"}
        if not body.get("stream"):
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": self.finish,
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        deltas = [{"role": "assistant", "content": None}] + [
            {"content": text[i : i + 5]} for i in range(0, len(text), 5)
        ]
        for delta in deltas:
            chunk = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        last = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": self.finish}],
        }
        await resp.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
        return resp

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


async def make_client(fake: FakeLlama) -> AsyncIterator[TestClient]:
    upstream = web.Application()
    upstream.router.add_post("/v1/chat/completions", fake.chat)
    upstream.router.add_get("/health", fake.health)
    async with TestServer(upstream) as up_server:
        proxy = build_app(str(up_server.make_url("")), "tiny")
        async with TestClient(TestServer(proxy)) as client:
            yield client


@pytest.fixture
async def run() -> AsyncIterator[Any]:
    clients: list[Any] = []

    async def start(fake: FakeLlama) -> TestClient:
        gen = make_client(fake)
        clients.append(gen)
        return await gen.__anext__()

    yield start
    for gen in clients:
        await gen.aclose()


async def sse(resp: Any) -> list[dict[str, Any]]:
    text = await resp.text()
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def tool_call_from_chunks(chunks: list[dict[str, Any]]) -> tuple[str, str, str]:
    name, args, call_id = "", "", ""
    for chunk in chunks:
        for tc in chunk["choices"][0]["delta"].get("tool_calls") or []:
            assert tc["index"] == 0
            call_id = tc.get("id") or call_id
            name += tc.get("function", {}).get("name") or ""
            args += tc.get("function", {}).get("arguments") or ""
    return call_id, name, args


async def test_forced_call_uses_schema_without_tools(run: Any) -> None:
    fake = FakeLlama(['{"name": "vote", "arguments": {"agent_id": "agent1"}}'])
    client = await run(fake)

    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "x", "messages": MESSAGES, "tools": TOOLS, "tool_choice": "required"},
    )
    body = await resp.json()

    sent = fake.requests[0]
    assert "tools" not in sent and "tool_choice" not in sent
    schema = sent["response_format"]["json_schema"]["schema"]
    assert [a["properties"]["name"]["const"] for a in schema["anyOf"]] == ["new_answer", "vote"]
    assert sent["messages"][0]["content"].startswith("S\n\nAnswer with exactly one tool call")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "vote"
    assert json.loads(call["function"]["arguments"]) == {"agent_id": "agent1"}


async def test_named_tool_choice_narrows_schema(run: Any) -> None:
    fake = FakeLlama(['{"name": "new_answer", "arguments": {"content": "4"}}'])
    client = await run(fake)

    await client.post(
        "/v1/chat/completions",
        json={
            "messages": MESSAGES,
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "new_answer"}},
        },
    )

    schema = fake.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["name"] == {"const": "new_answer"}


async def test_forced_call_streams_tool_call_deltas(run: Any) -> None:
    text = '{"name": "new_answer", "arguments": {"content": "a } b"}}'
    client = await run(FakeLlama([text]))

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": TOOLS, "tool_choice": "required", "stream": True},
    )
    chunks = await sse(resp)

    call_id, name, args = tool_call_from_chunks(chunks)
    assert call_id.startswith("call_") and name == "new_answer"
    assert json.loads(args) == {"content": "a } b"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert sum(len(c["choices"][0]["delta"].get("tool_calls") or []) for c in chunks) > 2


async def test_forced_call_cut_short_returns_text(run: Any) -> None:
    client = await run(FakeLlama(['{"name": "vote", "argu'], finish="length"))

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": TOOLS, "tool_choice": "required"},
    )
    choice = (await resp.json())["choices"][0]

    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == '{"name": "vote", "argu'


async def test_auto_converts_fenced_text_call(run: Any) -> None:
    text = '```json\n{"name": "vote", "arguments": {"agent_id": "agent1"}}\n```'
    fake = FakeLlama([text])
    client = await run(fake)

    resp = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "tools": TOOLS})
    choice = (await resp.json())["choices"][0]

    assert fake.requests[0]["tools"] == TOOLS  # passed through in auto mode
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "vote"


async def test_auto_stream_forwards_prose_and_converts_call(run: Any) -> None:
    text = 'I vote.\n{"name": "vote", "arguments": {"agent_id": "agent1"}}'
    client = await run(FakeLlama([text]))

    resp = await client.post(
        "/v1/chat/completions", json={"messages": MESSAGES, "tools": TOOLS, "stream": True}
    )
    chunks = await sse(resp)

    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == "I vote.\n"
    _, name, args = tool_call_from_chunks(chunks)
    assert (name, json.loads(args)) == ("vote", {"agent_id": "agent1"})
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_auto_stream_forwards_a_text_calls_arguments_as_they_come(run: Any) -> None:
    answer = "The capital of Australia is Canberra, a planned city."
    call = {"name": "new_answer", "arguments": {"content": answer}}
    text = f"Sure.\n```json\n{json.dumps(call)}\n```"
    client = await run(FakeLlama([text]))

    resp = await client.post(
        "/v1/chat/completions", json={"messages": MESSAGES, "tools": TOOLS, "stream": True}
    )
    chunks = await sse(resp)

    _, name, args = tool_call_from_chunks(chunks)
    assert (name, json.loads(args)) == ("new_answer", {"content": answer})
    # The upstream sent 5 characters a chunk: the arguments came out piece by piece.
    pieces = [c for c in chunks if (c["choices"][0]["delta"].get("tool_calls") or [{}])[0]
              .get("function", {}).get("arguments")]  # fmt: skip
    assert len(pieces) > 5
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Sure.\n"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_auto_stream_without_call_is_unchanged_text(run: Any) -> None:
    text = "Answer: use {x} in `code`."
    client = await run(FakeLlama([text]))

    resp = await client.post(
        "/v1/chat/completions", json={"messages": MESSAGES, "tools": TOOLS, "stream": True}
    )
    chunks = await sse(resp)

    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_plain_stream_is_relayed(run: Any) -> None:
    client = await run(FakeLlama(["hello world"]))

    resp = await client.post("/v1/chat/completions", json={"messages": MESSAGES, "stream": True})
    chunks = await sse(resp)

    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "hello world"


async def test_unknown_named_tool_is_a_400(run: Any) -> None:
    client = await run(FakeLlama([]))

    resp = await client.post(
        "/v1/chat/completions",
        json={
            "messages": MESSAGES,
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "delete"}},
        },
    )

    assert resp.status == 400
    assert "'delete'" in (await resp.json())["error"]["message"]


async def test_models_and_health(run: Any) -> None:
    client = await run(FakeLlama([]))

    models = await (await client.get("/v1/models")).json()
    health = await client.get("/health")

    assert [m["id"] for m in models["data"]] == ["tiny"]
    assert health.status == 200

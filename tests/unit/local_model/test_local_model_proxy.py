"""The proxy against a scripted llama.cpp stand-in (no model, no network)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from massgen_local_model.proxy import build_app
from massgen_local_model.text_first import CALL_STRING_CHARS

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
    """Answers each chat request with the next scripted text; records what it got.

    A script entry is a text, or ``(text, finish_reason)``; with ``usage`` a streamed
    answer ends with a usage chunk (``prompt_tokens`` 10 + the request's number, 9 of
    them cached from the second request on).
    """

    def __init__(
        self, texts: list[str | tuple[str, str]], finish: str = "stop", usage: bool = False
    ) -> None:
        self.texts = list(texts)
        self.finish = finish
        self.usage = usage
        self.requests: list[dict[str, Any]] = []

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        entry = self.texts.pop(0)
        text, finish = entry if isinstance(entry, tuple) else (entry, self.finish)
        base = {"id": "chatcmpl-1", "created": 1, "model": "m"}
        if not body.get("stream"):
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": finish,
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
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
        }
        await resp.write(f"data: {json.dumps(last)}\n\n".encode())
        if self.usage:
            count = {
                "prompt_tokens": 10 + len(self.requests),
                "completion_tokens": len(deltas) - 1,
                "prompt_tokens_details": {"cached_tokens": 9 if len(self.requests) > 1 else 0},
            }
            cached = count["prompt_tokens_details"]["cached_tokens"]
            timings = {  # as llama.cpp reports them with the usage
                "prompt_n": count["prompt_tokens"] - cached, "cache_n": cached,
                "predicted_n": count["completion_tokens"], "prompt_ms": 12.5,
                "predicted_ms": 40.25,
            }  # fmt: skip
            usage = {
                **base, "object": "chat.completion.chunk", "choices": [], "usage": count,
                "timings": timings,
            }  # fmt: skip
            await resp.write(f"data: {json.dumps(usage)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
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


async def test_named_tool_choice_uses_schema_without_tools(run: Any) -> None:
    fake = FakeLlama(['{"name": "vote", "arguments": {"agent_id": "agent1"}}'])
    client = await run(fake)
    choice_vote = {"type": "function", "function": {"name": "vote"}}

    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "x", "messages": MESSAGES, "tools": TOOLS, "tool_choice": choice_vote},
    )
    body = await resp.json()

    sent = fake.requests[0]
    assert "tools" not in sent and "tool_choice" not in sent
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["name"] == {"const": "vote"}
    assert sent["messages"][0]["content"].startswith("S\n\nAnswer with exactly one tool call")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "vote"
    assert json.loads(call["function"]["arguments"]) == {"agent_id": "agent1"}


# -- tool_choice "required": text first, then a short call under the grammar --------------

OPTIONAL_CONTENT = [
    {
        "type": "function",
        "function": {
            "name": "new_answer",
            "description": "Submit your answer.",
            "parameters": {
                "type": "object",
                "properties": {"content": {"type": "string"}},
                "required": [],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "vote",
            "parameters": {
                "type": "object",
                "properties": {
                    "agent_id": {"type": "string", "enum": ["agent1"]},
                    "reason": {"type": "string"},
                },
                "required": ["agent_id", "reason"],
            },
        },
    },
]


async def test_required_call_is_text_then_a_short_constrained_call(run: Any) -> None:
    answer = "```python\ndef add(a, b):\n    return a + b\n```"
    fake = FakeLlama([answer, '{"name": "new_answer", "arguments": {}}'], usage=True)
    client = await run(fake)

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": OPTIONAL_CONTENT, "tool_choice": "required",
              "max_tokens": 300},
    )  # fmt: skip
    body = await resp.json()

    text_step, call_step = fake.requests
    # The text step: the conversation alone, no tools, no note, no grammar.
    assert text_step["messages"] == MESSAGES and text_step["stream"] is True
    assert not {"tools", "tool_choice", "response_format"} & set(text_step)
    assert text_step["max_tokens"] == 300
    # The call step: the text as the reply, the tools listed last, a short call.
    assert call_step["messages"][:3] == [*MESSAGES, {"role": "assistant", "content": answer}]
    assert call_step["messages"][3]["role"] == "user"
    assert call_step["messages"][3]["content"].startswith("Now end your reply with exactly one")
    assert call_step["max_tokens"] == 256
    schema = call_step["response_format"]["json_schema"]["schema"]
    answer_args, vote_args = (a["properties"]["arguments"] for a in schema["anyOf"])
    assert answer_args["properties"] == {}  # the optional content is left to the text
    assert vote_args["required"] == ["agent_id", "reason"]
    assert vote_args["properties"]["reason"]["maxLength"] == CALL_STRING_CHARS
    choice = body["choices"][0]
    assert choice["message"]["content"] == answer
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "new_answer" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == {}
    assert choice["finish_reason"] == "tool_calls"
    # The conversation counts once: the call step adds only what was not cached.
    assert body["usage"]["prompt_tokens"] == 11 + (12 - 9)
    assert body["usage"]["completion_tokens"] > 2


async def test_required_call_without_text_keeps_the_full_schema(run: Any) -> None:
    fake = FakeLlama(["", '{"name": "new_answer", "arguments": {"content": "4"}}'])
    client = await run(fake)

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": OPTIONAL_CONTENT, "tool_choice": "required",
              "max_tokens": 300},
    )  # fmt: skip
    choice = (await resp.json())["choices"][0]

    call_step = fake.requests[1]
    assert call_step["messages"][-1]["content"].startswith("Answer with exactly one tool call")
    assert call_step["max_tokens"] == 300
    schema = call_step["response_format"]["json_schema"]["schema"]
    assert "content" in schema["anyOf"][0]["properties"]["arguments"]["properties"]
    assert choice["message"]["content"] is None
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "content": "4"
    }


async def test_text_step_stops_where_the_model_starts_a_call_itself(run: Any) -> None:
    text = 'It is 4.\n{"name": "new_answer", "arguments": {"content": "4 (mangled"}} more'
    fake = FakeLlama([text, '{"name": "vote", "arguments": {"agent_id": "agent1", "reason": "r"}}'])
    client = await run(fake)

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": OPTIONAL_CONTENT, "tool_choice": "required",
              "stream": True},
    )  # fmt: skip
    chunks = await sse(resp)

    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == "It is 4.\n"
    assert fake.requests[1]["messages"][-2] == {"role": "assistant", "content": "It is 4.\n"}
    _, name, args = tool_call_from_chunks(chunks)
    assert (name, json.loads(args)) == ("vote", {"agent_id": "agent1", "reason": "r"})
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_required_call_streams_text_then_call_deltas(run: Any) -> None:
    answer = "The capital of Australia is Canberra."
    fake = FakeLlama([answer, '{"name": "new_answer", "arguments": {}}'])
    client = await run(fake)

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": OPTIONAL_CONTENT, "tool_choice": "required",
              "stream": True},
    )  # fmt: skip
    chunks = await sse(resp)

    texts = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert len([t for t in texts if t]) > 3  # streamed as written, not in one block
    assert "".join(t or "" for t in texts) == answer
    first_call = next(i for i, c in enumerate(chunks) if c["choices"][0]["delta"].get("tool_calls"))
    assert all(not t for t in texts[first_call:])  # the call comes after the text
    _, name, args = tool_call_from_chunks(chunks)
    assert (name, json.loads(args)) == ("new_answer", {})
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_required_call_cut_short_keeps_the_text(run: Any) -> None:
    fake = FakeLlama(["It is 4.", ('{"name": "vo', "length")])
    client = await run(fake)

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": OPTIONAL_CONTENT, "tool_choice": "required"},
    )
    choice = (await resp.json())["choices"][0]

    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "It is 4."
    assert "tool_calls" not in choice["message"]


async def test_a_vote_only_required_call_is_the_short_call_alone(run: Any) -> None:
    """Every argument required (a vote at the answer cap): no text step, whose preamble a
    small model fills with a copy of an answer, only the short constrained call."""
    # llama.cpp streams only what it adds to the call's head.
    fake = FakeLlama(['agent1"}}'])
    client = await run(fake)

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": [TOOLS[1]], "tool_choice": "required",
              "max_tokens": 900, "stream": True},
    )  # fmt: skip
    chunks = await sse(resp)

    (call_step,) = fake.requests
    assert call_step["messages"][:2] == MESSAGES  # the cached prefix, the note after it
    assert call_step["messages"][2]["content"].startswith("Answer with exactly one tool call")
    # The call's fixed start is written for the model; a grammar constrains the rest.
    head = '{"name": "vote", "arguments": {"agent_id": "'
    assert call_step["messages"][3] == {"role": "assistant", "content": head}
    assert call_step["grammar"].startswith('root ::= ("agent1") "\\"}}"')
    assert call_step["max_tokens"] == 256 and "response_format" not in call_step
    args = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"].get("arguments") or ""
        for c in chunks
        if c.get("choices") and c["choices"][0]["delta"].get("tool_calls")
    )
    assert json.loads(args) == {"agent_id": "agent1"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_a_call_with_nothing_to_choose_after_text_is_not_asked_for(run: Any) -> None:
    """The first answer: new_answer is the only tool and its content is the text, so the
    call is known once the text ends; llama.cpp is asked for the text alone."""
    fake = FakeLlama(["It is 4."])
    client = await run(fake)

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": OPTIONAL_CONTENT[:1], "tool_choice": "required",
              "stream": True},
    )  # fmt: skip
    chunks = await sse(resp)

    assert len(fake.requests) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "It is 4."
    call_id, name, args = tool_call_from_chunks([c for c in chunks if c["choices"]])
    assert (name, json.loads(args)) == ("new_answer", {}) and call_id.startswith("call_")
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    # Not streamed: the same.
    fake.texts.append("Four.")
    reply = await (
        await client.post(
            "/v1/chat/completions",
            json={"messages": MESSAGES, "tools": OPTIONAL_CONTENT[:1], "tool_choice": "required"},
        )
    ).json()
    assert len(fake.requests) == 2
    message = reply["choices"][0]["message"]
    assert message["content"] == "Four."
    assert message["tool_calls"][0]["function"] == {"name": "new_answer", "arguments": "{}"}
    assert reply["choices"][0]["finish_reason"] == "tool_calls"


async def test_required_call_upstream_error_is_passed_on(run: Any) -> None:
    class Failing(FakeLlama):
        async def chat(self, request: web.Request) -> web.StreamResponse:
            return web.json_response({"error": {"message": "busy"}}, status=503)

    client = await run(Failing([]))

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": TOOLS, "tool_choice": "required", "stream": True},
    )

    assert resp.status == 503
    assert (await resp.json())["error"]["message"] == "busy"


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


NAMED_ANSWER = {"type": "function", "function": {"name": "new_answer"}}


async def test_forced_call_streams_tool_call_deltas(run: Any) -> None:
    text = '{"name": "new_answer", "arguments": {"content": "a } b"}}'
    client = await run(FakeLlama([text]))

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": TOOLS, "tool_choice": NAMED_ANSWER, "stream": True},
    )
    chunks = await sse(resp)

    call_id, name, args = tool_call_from_chunks(chunks)
    assert call_id.startswith("call_") and name == "new_answer"
    assert json.loads(args) == {"content": "a } b"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert sum(len(c["choices"][0]["delta"].get("tool_calls") or []) for c in chunks) > 2


async def test_forced_call_cut_short_returns_text(run: Any) -> None:
    client = await run(FakeLlama(['{"name": "new_answer", "argu'], finish="length"))

    resp = await client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "tools": TOOLS, "tool_choice": NAMED_ANSWER},
    )
    choice = (await resp.json())["choices"][0]

    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == '{"name": "new_answer", "argu'


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


async def test_the_log_line_says_what_llama_cpp_read_reused_and_wrote(run: Any) -> None:
    """Each proxied request's log line sums llama.cpp's timings over its completions:
    the relayed plain stream, and text then call (the call reusing the cached prefix)."""
    from structlog.testing import capture_logs

    client = await run(FakeLlama(["hello world", "Paris.", '{"agent_id": "agent1"}'], usage=True))
    with capture_logs() as logs:
        plain = await client.post(
            "/v1/chat/completions", json={"messages": MESSAGES, "stream": True}
        )
        await sse(plain)
        both = await client.post(
            "/v1/chat/completions",
            json={"messages": MESSAGES, "tools": OPTIONAL_CONTENT, "tool_choice": "required",
                  "stream": True},
        )  # fmt: skip
        await sse(both)
    lines = [e for e in logs if e["event"] == "chat_completion"]
    assert [e["path"] for e in lines] == ["plain", "text_first"]
    # Request 1 read 11 prompt tokens, none cached; requests 2 and 3 read 12 - 9 and 13 - 9.
    assert {k: lines[0][k] for k in ("prompt_n", "cache_n", "prompt_ms")} == {
        "prompt_n": 11, "cache_n": 0, "prompt_ms": 12,
    }  # fmt: skip
    assert (lines[1]["prompt_n"], lines[1]["cache_n"], lines[1]["predicted_ms"]) == (7, 18, 80)

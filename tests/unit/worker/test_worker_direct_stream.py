"""The direct path against litellm, over real HTTP: same deltas, same message, same errors.

Each case is served twice by a real server (the scripted fake model, or a raw one for
what it cannot say) and read once through ``LiteLLMModel`` sending the call straight
over HTTP (``auto``: chatcompletion goes direct) and once through litellm
(``transport="litellm"``). Tool-call ids come from the server's response counter, so
they are compared by position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from massgen_proto.messages import BackendSpec
from massgen_worker.llm import FatalModelError, LiteLLMModel, ModelError, RetryableModelError
from massgen_worker.stream import AssistantMessage, StreamAccumulator, StreamDelta, ToolCallDelta
from raw_http_server import (
    CHUNKED_HEAD,
    CLOSE_HEAD,
    RawHTTPServer,
    chunk,
    chunked,
    events,
    sse_response,
    usage_chunk,
)

from tests.support.fakes import answer, both, error, text
from tests.support.fakes.openai_server import tool_call

MESSAGES = [
    {"role": "system", "content": "You are agent1."},
    {"role": "user", "content": "What is 2 + 2?"},
]
TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in ("new_answer", "vote", "mcp__fs__read")
]
DECODE = {"new_answer": "content"}


@pytest.fixture
def raw_server() -> Iterator[RawHTTPServer]:
    server = RawHTTPServer().start()
    try:
        yield server
    finally:
        server.stop()
    server.assert_complete()


@dataclasses.dataclass
class Read:
    path: str | None
    deltas: list[StreamDelta]
    error: ModelError | None

    @property
    def message(self) -> AssistantMessage:
        accumulator = StreamAccumulator(DECODE)
        for delta in self.deltas:
            accumulator.feed(delta)
        return accumulator.finish()[1]


async def read(base_url: str, transport: str, model: str = "m", tools: Any = TOOLS) -> Read:
    backend = BackendSpec(type="chatcompletion", model=model, base_url=base_url, api_key="sk-t")
    llm = LiteLLMModel(backend, transport=transport)
    deltas: list[StreamDelta] = []
    failure = None
    try:
        async for delta in llm.stream(MESSAGES, tools, "required" if tools else None):
            deltas.append(delta)
    except ModelError as caught:
        failure = caught
    return Read(llm.last_path, deltas, failure)


def positional_ids(deltas: list[StreamDelta]) -> list[StreamDelta]:
    """The deltas with each tool-call id replaced by ``id<index>``."""
    return [
        dataclasses.replace(
            delta,
            tool_calls=tuple(
                ToolCallDelta(c.index, c.id and f"id{c.index}", c.name, c.arguments)
                for c in delta.tool_calls
            ),
        )
        for delta in deltas
    ]


def positional_message(message: AssistantMessage) -> AssistantMessage:
    calls = tuple(
        dataclasses.replace(call, id=f"id{i}") for i, call in enumerate(message.tool_calls)
    )
    return dataclasses.replace(message, tool_calls=calls)


async def both_paths(server: Any, *steps: Any, model: str = "m", tools: Any = TOOLS):
    """Serve ``steps`` to the direct path, then again to litellm; return both reads."""
    if isinstance(server, RawHTTPServer):
        server.script(*steps, *steps)
    else:
        server.script(model, [*steps, *steps])
    direct = await read(server.base_url, "auto", model, tools)
    through_litellm = await read(server.base_url, "litellm", model, tools)
    assert (direct.path, through_litellm.path) == ("direct", "litellm")
    return direct, through_litellm


def assert_same(direct: Read, through_litellm: Read) -> None:
    assert positional_ids(direct.deltas) == positional_ids(through_litellm.deltas)
    assert positional_message(direct.message) == positional_message(through_litellm.message)
    assert direct.error is None and through_litellm.error is None


# -- responses --------------------------------------------------------------------------


async def test_plain_text_and_usage(fake_model):
    direct, through_litellm = await both_paths(fake_model, text("The answer is 4."))
    assert_same(direct, through_litellm)
    message = direct.message
    assert (message.text, message.finish_reason) == ("The answer is 4.", "stop")
    assert message.usage is not None and message.usage.completion_tokens == 4
    # Both sent the same request.
    first, second = fake_model.requests
    assert first.body == second.body
    assert first.headers["authorization"] == second.headers["authorization"] == "Bearer sk-t"


async def test_reasoning_content(raw_server):
    response = sse_response(
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "2 and 2 "}),
        chunk({"reasoning_content": "make 4."}),
        chunk({"content": "4"}),
        chunk({}, "stop"),
        usage_chunk(12, 5),
    )
    direct, through_litellm = await both_paths(raw_server, response, tools=None)
    assert_same(direct, through_litellm)
    assert (direct.message.reasoning, direct.message.text) == ("2 and 2 make 4.", "4")


async def test_reasoning_field_of_vllm_and_groq(raw_server):
    response = sse_response(chunk({"reasoning": "thinking "}), chunk({"content": "4"}),
                            chunk({}, "stop"), usage_chunk(3, 2))  # fmt: skip
    direct, through_litellm = await both_paths(raw_server, response, tools=None)
    assert_same(direct, through_litellm)
    assert direct.message.reasoning == "thinking "


async def test_one_tool_call_streamed_in_pieces(fake_model):
    direct, through_litellm = await both_paths(fake_model, answer("The answer is 4.", tokens=12))
    assert_same(direct, through_litellm)
    message = direct.message
    assert [c.name for c in message.tool_calls] == ["new_answer"]
    assert message.tool_calls[0].arguments == {"content": "The answer is 4."}
    assert message.finish_reason == "tool_calls" and message.text.startswith("w0 ")
    assert sum(1 for d in direct.deltas if d.tool_calls) > 3  # the arguments came in pieces


async def test_several_tool_calls(fake_model):
    direct, through_litellm = await both_paths(fake_model, both("an answer", "agent2"))
    assert_same(direct, through_litellm)
    assert [c.name for c in direct.message.tool_calls] == ["new_answer", "vote"]
    assert direct.message.tool_calls[1].arguments["agent_id"] == "agent2"


async def test_an_mcp_tool_call(fake_model):
    direct, through_litellm = await both_paths(
        fake_model, tool_call("mcp__fs__read", {"path": "notes/a b.md"})
    )
    assert_same(direct, through_litellm)
    assert direct.message.tool_calls[0].arguments == {"path": "notes/a b.md"}


async def test_interleaved_parallel_tool_calls(raw_server):
    call = {"type": "function", "function": {"arguments": ""}}
    response = sse_response(
        chunk({"tool_calls": [{**call, "index": 0, "id": "a", "function": {"name": "new_answer",
                                                                          "arguments": ""}},
                              {**call, "index": 1, "id": "b", "function": {"name": "vote",
                                                                          "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"agent_id": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"content": "x"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"agent1"}'}}]}),
        chunk({}, "tool_calls"),
        usage_chunk(7, 9),
    )  # fmt: skip
    direct, through_litellm = await both_paths(raw_server, response)
    assert_same(direct, through_litellm)
    assert [c.raw_arguments for c in direct.message.tool_calls] == [
        '{"content": "x"}', '{"agent_id": "agent1"}']  # fmt: skip


async def test_usage_in_the_finishing_chunk_comes_after_the_finish(raw_server):
    # llama.cpp and some proxies put the usage into the chunk that finishes: litellm hands
    # the finish on first, so a turn acting on finished tool calls still reads the usage.
    response = sse_response(
        chunk({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                               "function": {"name": "vote", "arguments": '{"agent_id": "a"}'}}]}),
        chunk({}, "tool_calls", usage={"prompt_tokens": 4, "completion_tokens": 2,
                                       "total_tokens": 6}),
    )  # fmt: skip
    direct, through_litellm = await both_paths(raw_server, response)
    assert_same(direct, through_litellm)
    finish, usage = direct.deltas[-2:]
    assert (finish.finish_reason, finish.usage) == ("tool_calls", None)
    assert usage.usage is not None and usage.usage.prompt_tokens == 4


async def test_a_stream_without_done_that_finished(raw_server):
    response = sse_response(chunk({"content": "4"}), chunk({}, "stop"), usage_chunk(1, 1),
                            done=False)  # fmt: skip
    direct, through_litellm = await both_paths(raw_server, response, tools=None)
    assert_same(direct, through_litellm)


# -- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, RetryableModelError), (500, RetryableModelError), (503, RetryableModelError),
     (400, FatalModelError), (401, FatalModelError), (404, FatalModelError)],
)  # fmt: skip
async def test_http_errors_are_classified_alike_with_the_providers_message(
    fake_model, status, kind
):
    direct, through_litellm = await both_paths(fake_model, error(status, f"provider says {status}"))
    for result in (direct, through_litellm):
        assert result.deltas == []
        assert type(result.error) is kind and result.error.status == status
    assert direct.error.message == f"provider says {status}"
    assert through_litellm.error.message.endswith(f"provider says {status}")


async def test_connection_dropped_mid_stream(raw_server):
    # A chunked body cut off mid-chunk: what a dropped connection looks like.
    cut = CHUNKED_HEAD + chunked(events(chunk({"content": "The answer "}), done=False))
    cut += b'40\r\ndata: {"id"'
    direct, through_litellm = await both_paths(raw_server, cut, tools=None)
    assert positional_ids(direct.deltas) == positional_ids(through_litellm.deltas)
    assert [d.content for d in direct.deltas] == ["The answer "]
    for result in (direct, through_litellm):
        assert isinstance(result.error, RetryableModelError)
    # No response status: a connection error (litellm calls it a 500).
    assert direct.error.status is None
    assert "incomplete chunked read" in direct.error.message


async def test_connection_dropped_mid_stream_of_a_close_delimited_body(raw_server):
    # Without chunked framing the end of the body is the end of the connection: litellm
    # cannot tell a drop from the end and makes up ``finish_reason: stop`` (and a token
    # estimate), so the turn would act on half a message. The direct path knows a
    # response ends with its finish_reason (or [DONE]) and fails it, retryable.
    cut = CLOSE_HEAD + events(
        chunk({"content": "partial "}),
        chunk({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                               "function": {"name": "new_answer", "arguments": '{"cont'}}]}),
        done=False,
    ) + b'data: {"id": "chatcmpl-raw", "obj'  # fmt: skip
    direct, through_litellm = await both_paths(raw_server, cut)
    assert positional_ids(direct.deltas) == positional_ids(through_litellm.deltas[:2])
    assert isinstance(direct.error, RetryableModelError) and direct.error.status is None
    assert through_litellm.error is None and through_litellm.deltas[2].finish_reason == "stop"


async def test_an_error_event_after_the_200(raw_server):
    # vLLM/SGLang report an engine failure inside the stream; litellm retries it as a 500.
    response = sse_response(
        chunk({"content": "4"}), {"error": {"message": "engine died", "code": 503}}, done=False
    )
    direct, through_litellm = await both_paths(raw_server, response, tools=None)
    assert positional_ids(direct.deltas) == positional_ids(through_litellm.deltas)
    for result in (direct, through_litellm):
        assert isinstance(result.error, RetryableModelError) and result.error.status == 500
    assert direct.error.message == "engine died"
    assert through_litellm.error.message.endswith("engine died")


async def test_connection_refused_is_retryable():
    with socket_closed_port() as base_url:
        direct = await read(base_url, "auto")
        through_litellm = await read(base_url, "litellm")
    for result in (direct, through_litellm):
        assert result.deltas == [] and isinstance(result.error, RetryableModelError)
    assert direct.path == "direct" and direct.error.status is None


class socket_closed_port:
    """A base URL on a loopback port nothing listens on."""

    def __enter__(self) -> str:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


async def test_a_reader_that_stops_early_closes_the_response(fake_model):
    fake_model.script("m", [text("one two three four five six", token_delay=0.05)])
    llm = LiteLLMModel(BackendSpec(type="chatcompletion", model="m", base_url=fake_model.base_url))
    stream = llm.stream(MESSAGES, None, None)
    async for delta in stream:
        if delta.content:
            break
    await stream.aclose()  # what a cancelled turn does: the HTTP response is closed
    assert llm.last_path == "direct"

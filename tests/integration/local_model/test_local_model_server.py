"""The real server with a real (small) model, through the official OpenAI client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from massgen_local_model import LocalModelHandle
from massgen_orchestrator import prompts

from tests.support.fakes.turns import workflow_tools

WORKFLOW_TOOLS = workflow_tools(["agent1", "agent2"])  # as the orchestrator offers them
MESSAGES = [
    {"role": "system", "content": "You are agent2. Be brief."},
    {
        "role": "user",
        "content": "Q: What is 2+2?\nAnswers so far:\nagent1: 4\nVote for a correct answer "
        "or give a new one.",
    },
]


_CLIENTS: list[openai.AsyncOpenAI] = []


def client(handle: LocalModelHandle) -> openai.AsyncOpenAI:
    api = openai.AsyncOpenAI(base_url=handle.base_url, api_key="unused", max_retries=0)
    _CLIENTS.append(api)
    return api


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _CLIENTS:
        await _CLIENTS.pop().close()


async def one_call(
    api: openai.AsyncOpenAI, stream: bool, **kwargs: object
) -> tuple[str, str, str | None, int]:
    """``(name, arguments, finish_reason, argument pieces)`` of a one-call reply, streamed
    (the call's deltas joined) or not (``pieces`` is then 0)."""
    if not stream:
        reply = await api.chat.completions.create(**kwargs)
        (call,) = reply.choices[0].message.tool_calls
        return call.function.name, call.function.arguments, reply.choices[0].finish_reason, 0
    name, args, finish, pieces = "", "", None, 0
    async for chunk in await api.chat.completions.create(stream=True, **kwargs):
        if chunk.choices:
            finish = chunk.choices[0].finish_reason or finish
            for tc in chunk.choices[0].delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
                pieces += bool(tc.function.arguments)
    return name, args, finish, pieces


def assert_valid_workflow_call(name: str, arguments: str) -> None:
    args = json.loads(arguments)
    if name == "new_answer":
        # After text the call is short: the optional content is left to the text.
        assert set(args) <= {"content"} and isinstance(args.get("content", ""), str)
    else:
        assert name == "vote"
        assert set(args) == {"agent_id", "reason"}
        assert args["agent_id"] in ("agent1", "agent2") and isinstance(args["reason"], str)


async def test_models_and_health(local_model: LocalModelHandle) -> None:
    models = await client(local_model).models.list()
    assert [m.id for m in models.data] == [local_model.model_alias]
    async with httpx.AsyncClient() as http:
        health = await http.get(local_model.base_url.removesuffix("/v1") + "/health")
    assert health.json()["status"] == "ok"


async def test_plain_streamed_completion(local_model: LocalModelHandle) -> None:
    stream = await client(local_model).chat.completions.create(
        model=local_model.model_alias,
        messages=[{"role": "user", "content": "Say hello."}],
        stream=True,
        max_tokens=16,
        temperature=0,
    )
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]

    assert len([p for p in pieces if p]) > 1  # really streamed, not one block
    assert "".join(pieces).strip()


async def test_client_leaving_mid_stream_does_not_break_the_server(
    local_model: LocalModelHandle,
) -> None:
    api = client(local_model)
    for _ in range(4):  # more than n_parallel: abandoned slots must come back
        stream = await api.chat.completions.create(
            model=local_model.model_alias,
            messages=[{"role": "user", "content": "Count to one hundred."}],
            stream=True,
            max_tokens=400,
        )
        async for _chunk in stream:
            break
        await stream.close()

    reply = await api.chat.completions.create(
        model=local_model.model_alias,
        messages=[{"role": "user", "content": "Say yes."}],
        max_tokens=4,
    )
    assert reply.choices[0].message.content is not None


async def test_required_tool_call(local_model: LocalModelHandle) -> None:
    reply = await client(local_model).chat.completions.create(
        model=local_model.model_alias,
        messages=MESSAGES,
        tools=WORKFLOW_TOOLS,
        tool_choice="required",
        max_tokens=120,
        temperature=0,
    )

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_")
    assert_valid_workflow_call(call.function.name, call.function.arguments)
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


CODE_TASK = "Write a Python function add(a, b) that returns the sum of a and b."


@pytest.mark.parametrize("stream", [False, True])
async def test_required_call_is_text_then_a_short_call(
    qwen_model: LocalModelHandle, stream: bool
) -> None:
    # The coordination prompt and tools as the orchestrator sends them: the 0.5B model
    # writes its answer as prose (code in a fence, not squeezed into a JSON string), then
    # commits it with a new_answer call that the grammar keeps short.
    messages = [
        m.model_dump()
        for m in prompts.coordination_messages(
            task=CODE_TASK, answers={}, system_message="You answer directly and precisely."
        )
    ]
    kwargs = dict(
        model=qwen_model.model_alias,
        messages=messages,
        tools=prompts.workflow_tools([], can_answer=True),
        tool_choice="required",
        max_tokens=200,
        temperature=0,
        seed=0,
    )
    api = client(qwen_model)
    if stream:
        text, name, args, finish, text_pieces, call_after_text = "", "", "", None, 0, True
        async for chunk in await api.chat.completions.create(stream=True, **kwargs):
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            finish = chunk.choices[0].finish_reason or finish
            text += delta.content or ""
            text_pieces += bool(delta.content)
            for tc in delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
            call_after_text &= not (delta.content and name)
        assert text_pieces > 5  # the text streamed as llama.cpp wrote it
        assert call_after_text
    else:
        reply = await api.chat.completions.create(**kwargs)
        finish = reply.choices[0].finish_reason
        text = reply.choices[0].message.content or ""
        (call,) = reply.choices[0].message.tool_calls
        name, args = call.function.name, call.function.arguments

    assert finish == "tool_calls"
    assert "```" in text and "def add(a, b):" in text
    assert (name, json.loads(args)) == ("new_answer", {})


@pytest.mark.parametrize("stream", [False, True])
async def test_a_vote_at_the_cap_is_its_head_then_a_grammar(
    qwen_model: LocalModelHandle, stream: bool
) -> None:
    # Only vote is offered: the proxy writes the call's fixed start for the model and
    # llama.cpp's GBNF grammar constrains the label and the reason.
    answers = {"agent1": "4", "agent2": "5"}
    messages = [
        m.model_dump()
        for m in prompts.coordination_messages(
            task="What is 2+2?", answers=answers, can_answer=False, viewer="agent2",
            has_tools=False,
        )
    ]  # fmt: skip
    kwargs = dict(
        model=qwen_model.model_alias,
        messages=messages,
        tools=prompts.workflow_tools(list(answers), can_answer=False),
        tool_choice="required",
        temperature=0,
        seed=0,
    )
    name, args, finish, _ = await one_call(client(qwen_model), stream, **kwargs)
    assert finish == "tool_calls"
    vote = json.loads(args)
    assert name == "vote" and set(vote) == {"agent_id", "reason"}
    assert vote["agent_id"] in answers and 0 < len(vote["reason"]) <= 240


async def test_required_tool_call_streamed_in_parallel(local_model: LocalModelHandle) -> None:
    api = client(local_model)

    async def one(agent: str) -> tuple[str, str, str | None]:
        messages = [{"role": "system", "content": f"You are {agent}. Be brief."}, MESSAGES[1]]
        stream = await api.chat.completions.create(
            model=local_model.model_alias,
            messages=messages,
            tools=WORKFLOW_TOOLS,
            tool_choice="required",
            stream=True,
            max_tokens=120,
            temperature=0,
        )
        name, args, finish, pieces = "", "", None, 0
        async for chunk in stream:
            if not chunk.choices:
                continue
            finish = chunk.choices[0].finish_reason or finish
            pieces += bool(chunk.choices[0].delta.content)
            for tc in chunk.choices[0].delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
                pieces += bool(tc.function.arguments)
        return name, args, finish, pieces

    results = await asyncio.gather(*(one(a) for a in ("agent1", "agent2", "agent3")))

    for name, args, finish, pieces in results:
        assert finish == "tool_calls"
        assert_valid_workflow_call(name, args)
        # Text and call arguments come token by token, not at the end.
        assert pieces >= 4, (name, args, pieces)


async def test_named_tool_choice(local_model: LocalModelHandle) -> None:
    reply = await client(local_model).chat.completions.create(
        model=local_model.model_alias,
        messages=MESSAGES,
        tools=WORKFLOW_TOOLS,
        tool_choice={"type": "function", "function": {"name": "vote"}},
        max_tokens=120,
        temperature=0,
    )

    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == "vote"
    assert_valid_workflow_call(call.function.name, call.function.arguments)


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True])
async def test_text_json_tool_call_becomes_tool_calls(
    qwen_model: LocalModelHandle, stream: bool
) -> None:
    # Qwen coder models answer this with a fenced JSON object in the text.
    kwargs = dict(
        model=qwen_model.model_alias,
        messages=[{"role": "user", "content": "What's the weather in Paris? Use the tool."}],
        tools=[WEATHER],
        max_tokens=80,
        temperature=0,
    )
    name, args, finish, pieces = await one_call(client(qwen_model), stream, **kwargs)
    # Streamed, the text call's arguments are forwarded as they are written.
    assert pieces >= 2 or not stream
    assert finish == "tool_calls"
    assert name == "get_weather"
    assert json.loads(args)["city"].lower() == "paris"


def test_module_entry_point_prints_ready_line_and_stops_on_sigterm(
    local_model: LocalModelHandle,
) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "massgen_local_model",
            "--model",
            str(local_model.model_path),
            "--port",
            "0",
            "--parallel",
            "1",
            "--ctx-per-slot",
            "512",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["base_url"].startswith("http://127.0.0.1:")
        health = httpx.get(ready["base_url"].removesuffix("/v1") + "/health", timeout=10)
        assert health.status_code == 200
    finally:
        proc.terminate()
        code = proc.wait(timeout=20)
    assert code == 0
    assert proc.stdout.read() == ""  # nothing but the ready line on stdout

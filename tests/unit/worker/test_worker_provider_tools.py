"""Provider built-in tools end to end: what litellm sends to each provider's own protocol
(fake servers on loopback), and what the turn gets back (calls, notes, cited sources).

Pure parts first (``ProviderStream`` and the text protocol fed by hand), then one
exchange per provider through ``LiteLLMModel``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from massgen_proto.messages import BackendSpec
from massgen_worker.llm import FatalModelError, LiteLLMModel
from massgen_worker.provider_tools import (
    ProviderStream,
    find_text_tool_call,
    text_tool_messages,
)
from massgen_worker.stream import AssistantMessage, StreamAccumulator, StreamDelta

from tests.support.fakes import FakeOpenAIServer, text
from tests.support.fakes.provider_servers import (
    FakeAnthropicServer,
    FakeGeminiServer,
    FakeResponsesServer,
    anthropic,
    gemini,
    responses,
)

MESSAGES = [
    {"role": "system", "content": "You are agent1."},
    {"role": "user", "content": "What is the capital of France?"},
]
NEW_ANSWER = {
    "type": "function",
    "function": {
        "name": "new_answer",
        "description": "Submit your answer.",
        "parameters": {"type": "object", "properties": {"content": {"type": "string"}},
                       "required": ["content"]},
    },
}  # fmt: skip
VOTE = {
    "type": "function",
    "function": {
        "name": "vote",
        "description": "Vote for the best answer.",
        "parameters": {"type": "object", "properties": {
            "agent_id": {"type": "string", "enum": ["agent1"]}, "reason": {"type": "string"}},
            "required": ["agent_id", "reason"]},
    },
}  # fmt: skip
TOOLS = [NEW_ANSWER, VOTE]
PARIS = ("Paris - Encyclopedia", "https://example.org/paris")


def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
    """An OpenAI-style stream chunk as litellm yields it (dict form)."""
    out: dict = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        out["usage"] = usage
    return out


def run(reader: ProviderStream, chunks: list[dict]) -> tuple[list[StreamDelta], AssistantMessage]:
    deltas = [d for c in chunks for d in reader.feed(c)] + reader.finish()
    accumulator = StreamAccumulator({"new_answer": "content"})
    for delta in deltas:
        accumulator.feed(delta)
    return deltas, accumulator.finish()[1]


# -- ProviderStream, fed by hand ---------------------------------------------------------


def test_provider_run_calls_become_notes_and_sources_go_into_the_answer():
    search = {"srvtoolu_1": {"status": "completed", "action": {
        "query": "capital of France", "sources": [{"url": PARIS[1]}]}}}  # fmt: skip
    citation = {"type": "web_search_result_location", "title": PARIS[0], "url": PARIS[1]}
    chunks = [
        chunk({"tool_calls": [{"index": 0, "id": "srvtoolu_1", "type": "function",
                               "function": {"name": "web_search", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"query": "x"}'}}]}),
        chunk({"provider_specific_fields": {"web_search_calls": search}}),
        chunk({"provider_specific_fields": {"web_search_calls": search}}),  # repeated
        chunk({"provider_specific_fields": {"citation": citation}}),
        chunk({"content": "It is Paris."}),
        chunk({"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function",
                               "function": {"name": "new_answer", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"content": "Par'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": 'is"}'}}]}),
        chunk({}, finish="tool_calls"),
        chunk({}, usage={"prompt_tokens": 3, "completion_tokens": 4}),
    ]  # fmt: skip
    deltas, message = run(ProviderStream(["new_answer", "vote"], cite=True), chunks)
    assert [d.reasoning for d in deltas if d.reasoning] == [
        "\n[web search: capital of France (1 result)]\n"
    ]
    assert [(c.name, c.arguments) for c in message.tool_calls] == [
        ("new_answer", {"content": f"Paris\n\nSources:\n- {PARIS[0]}: {PARIS[1]}"})
    ]
    assert message.text == "It is Paris." and message.finish_reason == "tool_calls"
    # Everything the turn acts on comes before the finish: it stops reading there.
    finish_at = next(i for i, d in enumerate(deltas) if d.finish_reason)
    assert all(not d.tool_calls for d in deltas[finish_at:])
    assert message.usage is not None


def test_a_function_tool_named_like_a_provider_tool_stays_a_call():
    chunks = [
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "web_search", "arguments": "{}"}}]}),
        chunk({}, finish="tool_calls"),
    ]  # fmt: skip
    _, message = run(ProviderStream(["web_search"]), chunks)
    assert [c.name for c in message.tool_calls] == ["web_search"]


def test_only_provider_calls_make_a_text_reply_and_sources_follow_the_text():
    chunks = [
        chunk({"tool_calls": [{"index": 0, "id": "srvtoolu_1", "type": "function",
                               "function": {"name": "web_search", "arguments": "{}"}}]}),
        chunk({"annotations": [{"type": "url_citation", "url_citation": {
            "url": PARIS[1], "title": PARIS[0], "start_index": 0, "end_index": 5}}]}),
        chunk({"content": "Paris."}),
        chunk({}, finish="tool_calls"),
    ]  # fmt: skip
    _, message = run(ProviderStream([], cite=True), chunks)
    assert message.tool_calls == () and message.finish_reason == "stop"
    assert message.text == f"Paris.\n\nSources:\n- {PARIS[0]}: {PARIS[1]}"


def test_arguments_streamed_again_after_a_whole_first_fragment_are_dropped():
    # litellm's simulated stream of xAI's Responses API sends the whole arguments, then
    # the same arguments again in pieces.
    whole = '{"content": "Paris"}'
    chunks = [
        chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "new_answer", "arguments": whole}}]}),
        *[chunk({"tool_calls": [{"index": 0, "function": {"arguments": whole[i:i + 5]}}]})
          for i in range(0, len(whole), 5)],
        chunk({}, finish="tool_calls"),
    ]  # fmt: skip
    _, message = run(ProviderStream(["new_answer"]), chunks)
    assert message.tool_calls[0].raw_arguments == whole


def test_text_protocol_reads_the_last_call_and_adds_sources():
    reply = (
        'I compared {"tool": "vote"} style notes.\n```json\n'
        '{"tool": "new_answer", "arguments": {"content": "Paris {the capital}"}}\n```'
    )
    chunks = [
        chunk({"content": reply[:30]}),
        chunk({"content": reply[30:]}),
        chunk({"annotations": [{"type": "url_citation", "url_citation": {
            "url": PARIS[1], "title": PARIS[0]}}]}),
        chunk({}, finish="stop"),
    ]  # fmt: skip
    reader = ProviderStream([], cite=True, hold_answers=True, text_tools=["new_answer", "vote"])
    _, message = run(reader, chunks)
    assert message.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in message.tool_calls] == [
        ("new_answer", {"content": f"Paris {{the capital}}\n\nSources:\n- {PARIS[0]}: {PARIS[1]}"})
    ]


def test_find_text_tool_call():
    assert find_text_tool_call('x {"tool": "vote", "arguments": {"agent_id": "agent1"}}',
                               ["vote"]) == ("vote", {"agent_id": "agent1"})  # fmt: skip
    assert find_text_tool_call(
        '{"tool": "vote", "agent_id": "agent1", "reason": "best"}', ["vote"]
    ) == ("vote", {"agent_id": "agent1", "reason": "best"})
    assert find_text_tool_call('{"tool": "delete_all", "arguments": {}}', ["vote"]) is None
    assert find_text_tool_call("no call {broken", ["vote"]) is None


def test_text_tool_messages_rewrite_calls_and_results_as_text():
    history = [
        *MESSAGES,
        {"role": "assistant", "content": "Let me read it.", "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "mcp__fs__read", "arguments": '{"path": "a.txt"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "mcp__fs__read", "content": "hello"},
    ]  # fmt: skip
    out = text_tool_messages(history, TOOLS)
    assert out[0]["role"] == "system" and out[0]["content"].startswith("You are agent1.\n\n")
    assert "- vote: Vote for the best answer." in out[0]["content"]
    assert out[2] == {"role": "assistant", "content": 'Let me read it.\n{"tool": "mcp__fs__read", '
                      '"arguments": {"path": "a.txt"}}'}  # fmt: skip
    assert out[3] == {"role": "user", "content": "Result of mcp__fs__read:\nhello"}
    assert all("tool_calls" not in m for m in out)


# -- one exchange per provider, through litellm --------------------------------------------


@pytest.fixture
def responses_server() -> Iterator[FakeResponsesServer]:
    with FakeResponsesServer() as server:
        yield server
    server.assert_complete()


async def stream(backend: BackendSpec, tools=TOOLS) -> tuple[list[StreamDelta], AssistantMessage]:
    accumulator = StreamAccumulator({"new_answer": "content"})
    deltas = []
    async for delta in LiteLLMModel(backend).stream(MESSAGES, tools, "required" if tools else None):
        deltas.append(delta)
        accumulator.feed(delta)
    return deltas, accumulator.finish()[1]


def calls(message: AssistantMessage) -> list[tuple[str, object]]:
    return [(c.name, c.arguments) for c in message.tool_calls]


async def test_claude_web_search_and_code_execution(anthropic_server):
    anthropic_server.script([anthropic.reply(
        anthropic.web_search("capital of France", [PARIS]),
        anthropic.text("It is Paris.", cite=PARIS),
        anthropic.code_execution("python -c 'print(6*7)'", "42\n"),
        anthropic.tool_use("new_answer", {"content": "Paris"}),
    )])  # fmt: skip
    backend = BackendSpec(
        type="claude",
        model="claude-sonnet-4-5",
        api_key="sk-ant",
        base_url=anthropic_server.base_url,
        params={"enable_web_search": True, "enable_code_execution": True},
    )
    deltas, message = await stream(backend)

    request = anthropic_server.requests[0]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant"
    assert request.headers["anthropic-beta"] == "code-execution-2025-08-25"
    body = request.body
    assert [t.get("name") for t in body["tools"]] == [
        "new_answer", "vote", "code_execution", "web_search"]  # fmt: skip
    assert body["tools"][2:] == [
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"type": "web_search_20250305", "name": "web_search"},
    ]
    assert body["tool_choice"] == {"type": "any"}
    assert "enable_web_search" not in json.dumps(body)

    assert calls(message) == [
        ("new_answer", {"content": f"Paris\n\nSources:\n- {PARIS[0]}: {PARIS[1]}"})
    ]
    assert message.text == "It is Paris."
    assert message.reasoning == (
        "\n[web search: capital of France (1 result)]\n"
        "\n[code execution:\npython -c 'print(6*7)'\n42]\n"
    )
    assert message.usage is not None


async def test_claude_provider_error_is_fatal_with_its_words(anthropic_server):
    anthropic_server.script([anthropic.error(400, "web search is not enabled for this org")])
    backend = BackendSpec(
        type="claude",
        model="claude-sonnet-4-5",
        api_key="k",
        base_url=anthropic_server.base_url,
        params={"enable_web_search": True},
    )
    with pytest.raises(FatalModelError, match="web search is not enabled for this org"):
        await stream(backend)


async def test_gemini_2_offers_the_workflow_tools_as_text_beside_google_search(gemini_server):
    gemini_server.script([gemini.reply(
        gemini.text("Paris is the capital.\n"),
        gemini.text('{"tool": "new_answer", "arguments": {"content": "Paris"}}'),
        search=("capital of France", [PARIS]),
    )])  # fmt: skip
    backend = BackendSpec(
        type="gemini",
        model="gemini-2.5-flash",
        api_key="g-key",
        base_url=gemini_server.base_url,
        params={"enable_web_search": True, "enable_code_execution": True},
    )
    _, message = await stream(backend)

    request = gemini_server.requests[0]
    assert request.path == "/models/gemini-2.5-flash:streamGenerateContent"
    assert request.headers["x-goog-api-key"] == "g-key"
    body = request.body
    assert body["tools"] == [{"code_execution": {}}, {"googleSearch": {}}]
    assert "toolConfig" not in body
    instruction = body["system_instruction"]["parts"][0]["text"]
    assert instruction.startswith("You are agent1.") and '"tool": "<name>"' in instruction

    assert calls(message) == [
        ("new_answer", {"content": f"Paris\n\nSources:\n- {PARIS[0]}: {PARIS[1]}"})
    ]
    assert message.finish_reason == "tool_calls"


async def test_gemini_3_calls_functions_next_to_google_search(gemini_server):
    gemini_server.script([gemini.reply(
        gemini.function_call("new_answer", {"content": "Paris"}),
        search=("capital of France", [PARIS]),
    )])  # fmt: skip
    backend = BackendSpec(
        type="gemini",
        model="gemini-3-pro-preview",
        api_key="g",
        base_url=gemini_server.base_url,
        params={"enable_web_search": True},
    )
    _, message = await stream(backend)

    body = gemini_server.requests[0].body
    assert body["tools"][0]["function_declarations"][0]["name"] == "new_answer"
    assert body["tools"][1:] == [{"googleSearch": {}}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"},
                                  "includeServerSideToolInvocations": True}  # fmt: skip
    assert calls(message) == [
        ("new_answer", {"content": f"Paris\n\nSources:\n- {PARIS[0]}: {PARIS[1]}"})
    ]


async def test_gemini_presentation_with_search_cites_in_the_text(gemini_server):
    gemini_server.script([gemini.reply(gemini.text("Paris."), search=("capital", [PARIS]))])
    backend = BackendSpec(
        type="gemini",
        model="gemini-2.5-pro",
        api_key="g",
        base_url=gemini_server.base_url,
        params={"enable_web_search": True},
    )
    _, message = await stream(backend, tools=None)
    assert gemini_server.requests[0].body["tools"] == [{"googleSearch": {}}]
    assert message.text == f"Paris.\n\nSources:\n- {PARIS[0]}: {PARIS[1]}"


async def test_openai_tools_and_reasoning_go_through_the_responses_api(responses_server):
    responses_server.script([responses.reply(
        responses.web_search("capital of France"),
        responses.code_interpreter("print(6*7)", "42\n"),
        responses.text("It is Paris.", cite=PARIS),
        responses.function_call("new_answer", {"content": "Paris"}),
    )])  # fmt: skip
    backend = BackendSpec(type="openai", model="gpt-5-nano", api_key="sk-oa",
                          base_url=responses_server.base_url, params={
                              "enable_web_search": True, "enable_code_interpreter": True,
                              "reasoning": {"effort": "low", "summary": "auto"},
                              "text": {"verbosity": "low"}})  # fmt: skip
    _, message = await stream(backend)

    request = responses_server.requests[0]
    assert request.path == "/v1/responses"
    assert request.headers["authorization"] == "Bearer sk-oa"
    body = request.body
    assert body["tools"][2:] == [
        {"type": "web_search"},
        {"type": "code_interpreter", "container": {"type": "auto"}},
    ]
    assert body["tool_choice"] == "required"
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["text"] == {"verbosity": "low"}
    assert body["instructions"] == "You are agent1."
    # litellm's chat bridge does not pass on Responses annotations or tool items, so
    # the answer comes back as written.
    assert calls(message) == [("new_answer", {"content": "Paris"})]
    assert message.text == "It is Paris."


async def test_grok_web_search_through_xais_responses_api(responses_server):
    responses_server.script([responses.reply(
        responses.web_search("capital of France"),
        responses.text("Paris."),
        responses.function_call("new_answer", {"content": "Paris"}),
    )])  # fmt: skip
    backend = BackendSpec(
        type="grok",
        model="grok-4",
        api_key="xai-k",
        base_url=responses_server.base_url,
        params={"enable_web_search": True},
    )
    _, message = await stream(backend)
    request = responses_server.requests[0]
    assert request.path == "/v1/responses"
    assert request.body["tools"][-1] == {"type": "web_search"}
    assert calls(message) == [("new_answer", {"content": "Paris"})]


async def test_openrouter_and_qwen_search_on_the_chat_protocol():
    with FakeOpenAIServer() as server:
        server.script("or-model", [text("Paris.")])
        server.script("qwen-plus", [text("Paris.")])
        for backend_type, model in (("openrouter", "or-model"), ("qwen", "qwen-plus")):
            backend = BackendSpec(
                type=backend_type,
                model=model,
                api_key="k",
                base_url=server.base_url,
                params={"enable_web_search": True},
            )
            _, message = await stream(backend, tools=None)
            assert message.text == "Paris."
        server.assert_complete()
    openrouter, qwen = (server.requests_for(m)[0].body for m in ("or-model", "qwen-plus"))
    assert openrouter["web_search_options"] == {}
    assert qwen["enable_search"] is True and "web_search_options" not in qwen


def test_provider_fakes_fail_from_both_ends():
    import urllib.error
    import urllib.request

    with FakeGeminiServer() as server:
        server.script([gemini.reply(gemini.text("one")), gemini.reply(gemini.text("two"))])
        url = f"{server.base_url}/models/m:generateContent"
        body = json.dumps({"contents": []}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=5) as reply:
            assert json.loads(reply.read())["candidates"][0]["content"]["parts"] == [
                {"text": "one"}
            ]
        with FakeAnthropicServer() as other:
            request = urllib.request.Request(f"{other.base_url}/v1/messages", data=b"{}")
            with pytest.raises(urllib.error.HTTPError) as excinfo:
                urllib.request.urlopen(request, timeout=5)
            assert excinfo.value.code == 500
            with pytest.raises(AssertionError, match="unexpected model call"):
                other.assert_complete()
        with pytest.raises(AssertionError, match="1 scripted reply"):
            server.assert_complete()

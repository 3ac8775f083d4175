"""The direct path sends what litellm sends: both requests recorded by a real server.

For every direct backend type, with and without provider parameters, a conversation with
tool calls and None-valued keys, and tools with the schema details litellm rewrites for
some providers, the call goes once through litellm and once straight over HTTP; the
scripted fake model records both, and their JSON bodies and headers must be equal.
"""

from __future__ import annotations

import copy

import pytest
from massgen_proto.messages import BackendSpec
from massgen_worker.direct import DIRECT_TYPES
from massgen_worker.llm import LiteLLMModel

from tests.support.fakes import text

MESSAGES = [
    {"role": "system", "content": "You are agent1.", "name": None},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "new_answer", "arguments": '{"content": "4"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Rejected: vote instead."},
    {"role": "assistant", "content": "", "reasoning_content": None},
    {"role": "user", "content": "Go on."},
]  # fmt: skip
TOOLS = [
    {"type": "function", "function": {
        "name": "new_answer", "description": "Submit an answer.", "strict": True,
        "parameters": {"type": "object", "additionalProperties": False,
                       "properties": {"content": {"type": "string"}}, "required": ["content"]}}},
    {"type": "function", "function": {
        "name": "mcp__fs__read", "description": "Read a file.",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string", "pattern": "^[\\w./-]+$"},
            "options": {"type": "object", "additionalProperties": False,
                        "properties": {"encoding": {"type": "string", "enum": ["utf-8"]}}}},
            "required": ["path"]}}},
]  # fmt: skip
PARAMS = {
    "top_p": 0.9, "seed": 3, "stop": ["\n\n"], "frequency_penalty": 0.1, "presence_penalty": 0.2,
    "parallel_tool_calls": False, "user": "u-1", "logprobs": True, "top_logprobs": 2,
    "reasoning": {"effort": "low"}, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1,
    "chat_template_kwargs": {"enable_thinking": False}, "extra_body": {"cache_salt": "s1"},
    "permission_mode": "bypassPermissions",  # not a parameter of any of them: never sent
}  # fmt: skip
# litellm fetches a Hugging Face tokenizer for some names (``llama``) at a stream's end:
# names here avoid that (the tests reach no real host).
MODELS = {"vllm": ["org/model-4b", "m1"], "qwen": ["qwen-plus", "m1"],
          "nebius": ["org/model-70b", "m1"]}  # fmt: skip


@pytest.fixture(autouse=True)
def openai_org_and_project(monkeypatch):
    # The openai client sends these wherever it goes; the direct path must too.
    monkeypatch.setenv("OPENAI_ORGANIZATION", "org-test")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-test")


async def send_both(fake_model, backend: BackendSpec, tools=TOOLS, tool_choice="required"):
    """One call through litellm, one direct; the two requests the server received."""
    fake_model.script(backend.model, [text("ok"), text("ok")])
    paths = []
    for transport in ("litellm", "auto"):
        llm = LiteLLMModel(backend, transport=transport)
        # Each path gets its own copies: litellm edits the tools of some providers in place.
        async for _ in llm.stream(copy.deepcopy(MESSAGES), copy.deepcopy(tools), tool_choice):
            pass
        paths.append(llm.last_path)
    assert paths == ["litellm", "direct"]
    return fake_model.requests[-2], fake_model.requests[-1]


def assert_same_request(through_litellm, direct) -> None:
    assert direct.body == through_litellm.body
    for header in ("authorization", "content-type", "openai-organization", "openai-project"):
        assert direct.headers.get(header) == through_litellm.headers.get(header), header


@pytest.mark.parametrize("with_params", [False, True], ids=["plain", "params"])
@pytest.mark.parametrize("backend_type", sorted(DIRECT_TYPES))
async def test_same_request_as_litellm(fake_model, backend_type, with_params):
    for model in MODELS.get(backend_type, ["m1", "gpt-4o-mini"]):
        backend = BackendSpec(
            type=backend_type, model=model, base_url=fake_model.base_url, api_key="sk-own",
            temperature=0.3, max_tokens=200, params=dict(PARAMS) if with_params else {},
        )  # fmt: skip
        through_litellm, direct = await send_both(fake_model, backend)
        assert_same_request(through_litellm, direct)


async def test_same_request_without_tools(fake_model):
    backend = BackendSpec(type="local", model="qwen2.5-coder-0.5b", base_url=fake_model.base_url)
    through_litellm, direct = await send_both(fake_model, backend, tools=None, tool_choice=None)
    assert_same_request(through_litellm, direct)
    assert "tools" not in direct.body and "tool_choice" not in direct.body
    assert direct.headers["authorization"] == "Bearer not-needed"


async def test_vllm_schemas_lose_closed_objects_and_strict_as_with_litellm(fake_model):
    backend = BackendSpec(type="vllm", model="org/model-4b", base_url=fake_model.base_url)
    through_litellm, direct = await send_both(fake_model, backend)
    assert_same_request(through_litellm, direct)
    new_answer = direct.body["tools"][0]["function"]
    assert "strict" not in new_answer and "additionalProperties" not in new_answer["parameters"]
    assert "openai-organization" not in direct.headers  # litellm's own HTTP client for vllm


async def test_openai_default_endpoint_from_the_environment(fake_model, monkeypatch):
    # No base_url: litellm's default OpenAI endpoint, which OPENAI_BASE_URL overrides.
    monkeypatch.setenv("OPENAI_BASE_URL", fake_model.base_url)
    backend = BackendSpec(type="openai", model="gpt-4o-mini", api_key="sk-own")
    through_litellm, direct = await send_both(fake_model, backend)
    assert_same_request(through_litellm, direct)
    assert direct.body["model"] == "gpt-4o-mini"

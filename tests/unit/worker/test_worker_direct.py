"""Which calls go direct (``direct.litellm_reason``), the requests they make, and that the
direct path never imports litellm."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from massgen_proto.messages import BackendSpec
from massgen_proto.providers import BACKENDS
from massgen_worker.direct import DIRECT_TYPES, litellm_reason, wire_request
from massgen_worker.llm import LiteLLMModel, needs_litellm, plan_call
from massgen_worker.provider_params import OPENAI_PARAMS

from tests.support.fakes import text

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "new_answer",
                                           "parameters": {"type": "object"}}}]  # fmt: skip


def reason(backend_type="chatcompletion", model="m", messages=MESSAGES, tools=TOOLS, **params):
    backend = BackendSpec(type=backend_type, model=model, base_url="http://127.0.0.1:9/v1",
                          api_key="k", params=params)  # fmt: skip
    plan = plan_call(backend, messages, tools, "required" if tools else None, env={})
    return litellm_reason(plan.backend_type, plan.params, plan.builtin)


@pytest.mark.parametrize("backend_type", sorted(DIRECT_TYPES))
def test_plain_calls_of_the_direct_types_go_direct(backend_type):
    assert reason(backend_type) is None


@pytest.mark.parametrize(
    "backend_type",
    ["claude", "gemini", "grok", "azure_openai", "groq", "together", "fireworks", "cerebras",
     "openrouter", "moonshot", "kimi"],
)  # fmt: skip
def test_types_litellm_rewrites_go_through_litellm(backend_type):
    assert reason(backend_type) == f"backend type {backend_type!r} uses litellm's own adapter"


def test_everything_not_in_the_direct_set_is_listed_as_litellms():
    assert DIRECT_TYPES < set(BACKENDS)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (dict(backend_type="openai", enable_web_search=True), "provider built-in tools"),
        (dict(backend_type="qwen", enable_web_search=True), "provider built-in tools"),
        (dict(backend_type="openai", reasoning={"effort": "low", "summary": "auto"}),
         "Responses API"),
        (dict(backend_type="openai", model="gpt-5-nano"), "reasoning models"),
        (dict(backend_type="chatcompletion", model="o3-mini"), "reasoning models"),
        (dict(backend_type="zai", model="gpt-6-sol"), "reasoning models"),
        (dict(backend_type="nebius", max_completion_tokens=100), "max_completion_tokens"),
        (dict(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]),
         "content parts"),
        (dict(messages=[{"role": "user", "content": "hi", "cache_control": {"type": "x"}}]),
         "cache_control"),
        (dict(tools=[{"type": "custom", "custom": {"name": "x"}}]), "non-function tool"),
        (dict(tools=[{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"s": {"type": "string", "pattern": "\\p{L}+"}}}}}]),
         "pattern Python cannot compile"),
    ],
)  # fmt: skip
def test_calls_with_something_only_litellm_does_go_through_litellm(case, expected):
    found = reason(**case)
    assert found is not None and expected in found


def test_reasoning_names_only_matter_for_the_openai_adapter():
    assert reason("vllm", model="org/gpt-5-distill") is None  # litellm's vllm adapter
    assert reason("chatcompletion", model="gpt-4o-mini") is None
    assert reason("chatcompletion", model="gpt-5-mini") is not None


def test_a_top_level_union_matters_only_on_openais_own_endpoint():
    union = [{"type": "function", "function": {"name": "f", "parameters": {
        "anyOf": [{"type": "object"}, {"type": "object"}]}}}]  # fmt: skip
    assert reason("chatcompletion", tools=union) is None  # a custom endpoint
    backend = BackendSpec(type="openai", model="gpt-4o-mini", api_key="k")
    plan = plan_call(backend, MESSAGES, union, "required", env={})
    assert "combinator" in litellm_reason("openai", plan.params, plan.builtin)


def test_wire_request_of_a_vllm_endpoint_naming_the_route():
    params = {"model": "hosted_vllm/org/m", "messages": MESSAGES, "api_key": "k",
              "api_base": "http://vllm:8000/v1/chat/completions/", "stream": True}  # fmt: skip
    request = wire_request("vllm", params, {"OPENAI_ORGANIZATION": "org"})
    assert request.url == "http://vllm:8000/v1/chat/completions"
    assert request.body["model"] == "org/m"
    assert "OpenAI-Organization" not in request.headers


def test_wire_request_headers_and_body():
    params = {"model": "openai/m", "messages": [{"role": "user", "content": "hi", "name": None}],
              "api_key": "sk-1", "api_base": "http://h:1/v1/", "stream": True,
              "extra_body": {"top_k": 5}, "max_retries": 0, "num_retries": 0,
              "extra_headers": {"X-Trace": "t"}, "temperature": 0}  # fmt: skip
    request = wire_request("chatcompletion", params, {"OPENAI_ORG_ID": "org-2"})
    assert request.url == "http://h:1/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-1"
    assert request.headers["OpenAI-Organization"] == "org-2"
    assert request.headers["X-Trace"] == "t"
    assert request.body == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                            "stream": True, "top_k": 5, "temperature": 0}  # fmt: skip


def test_needs_litellm_by_provider():
    assert not needs_litellm(["local", "vllm", "openai", "chatcompletion"], env={})
    for provider in ("anthropic", "gemini", "xai", "azure", "groq", "openrouter", "moonshot"):
        assert needs_litellm(["local", provider], env={})
    assert not needs_litellm(["perf", "benchmsgs"], env={})  # pools named by a deployment
    assert needs_litellm(["local"], env={"MASSGEN_MODEL_TRANSPORT": "litellm"})


def test_transport_setting():
    backend = BackendSpec(type="local", model="m")
    assert LiteLLMModel(backend).transport == "auto"
    assert LiteLLMModel(backend, transport="litellm").transport == "litellm"
    with pytest.raises(ValueError, match="'auto' or 'litellm'"):
        LiteLLMModel(backend, transport="direct")


def test_planning_and_sending_a_direct_call_never_imports_litellm(fake_model):
    # A fresh interpreter (this one may have litellm loaded by other tests).
    fake_model.script("m", [text("4")])
    code = textwrap.dedent(f"""
        import asyncio, sys
        from massgen_proto.messages import BackendSpec
        from massgen_worker.llm import LiteLLMModel, apreload

        async def main():
            await apreload(["local", "vllm"])
            backend = BackendSpec(type="chatcompletion", model="m",
                                  base_url="{fake_model.base_url}",
                                  params={{"top_k": 20, "extra_body": {{"min_p": 0.1}}}})
            llm = LiteLLMModel(backend)
            text = "".join([d.content or "" async for d in llm.stream(
                [{{"role": "user", "content": "2+2?"}}], None, None)])
            print(llm.last_path, text, "litellm" in sys.modules, "openai" in sys.modules)

        asyncio.run(main())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["direct", "4", "False", "False"]
    assert fake_model.requests[-1].body["top_k"] == 20


def test_openai_parameter_names_are_litellms():
    from massgen_worker.llm import preload

    litellm = preload()
    spec_keys = set().union(*(spec.params for spec in BACKENDS.values()))
    spec_keys |= {"reasoning_effort", "verbosity"}  # what ``reasoning`` and ``text`` become
    assert spec_keys & set(litellm.OPENAI_CHAT_COMPLETION_PARAMS) == OPENAI_PARAMS


@pytest.mark.parametrize("backend_type", sorted(DIRECT_TYPES))
def test_litellm_lists_none_of_a_direct_types_own_parameters(backend_type):
    """Why planning may send a direct type's own parameters (top_k, min_p, ...) to the body
    without asking litellm: litellm never lists them, so it would do the same."""
    from massgen_worker.llm import preload

    litellm = preload()
    spec = BACKENDS[backend_type]
    own = spec.params - OPENAI_PARAMS
    for model in ("m", "gpt-4o-mini", "org/model-4b", "qwen-plus", "glm-4.5"):
        listed = litellm.get_supported_openai_params(
            model=model, custom_llm_provider=spec.litellm_prefix.rstrip("/")
        )
        assert not own & set(listed or ()), (backend_type, model)

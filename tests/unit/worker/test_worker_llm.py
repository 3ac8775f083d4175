"""LiteLLMModel's pure parts: backend → litellm call (keys, endpoints, parameters, provider
tools), and error classification."""

from __future__ import annotations

import pytest
from massgen_proto.messages import BackendSpec
from massgen_worker.llm import (
    FatalModelError,
    RetryableModelError,
    build_call_params,
    classify_error,
    plan_call,
)

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "new_answer", "parameters": {}}}]


def test_openai_backend_with_env_key_and_passthrough():
    backend = BackendSpec(
        type="openai",
        model="gpt-4o-mini",
        temperature=0.2,
        max_tokens=300,
        params={"reasoning": {"effort": "low"}, "text": {"verbosity": "low"}, "top_p": 0.9,
                "seed": None},
    )  # fmt: skip
    plan = plan_call(backend, MESSAGES, TOOLS, "required", env={"OPENAI_API_KEY": "sk-1"})
    assert plan.params == {
        "model": "openai/gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_retries": 0,
        "num_retries": 0,
        "api_key": "sk-1",
        "temperature": 0.2,
        "max_tokens": 300,
        "tools": TOOLS,
        "tool_choice": "required",
        "top_p": 0.9,
    }
    # gpt-4o-mini is no reasoning model and takes no verbosity: litellm lists neither.
    assert plan.dropped == ("reasoning_effort", "verbosity")


def test_reasoning_summary_and_verbosity_go_through_the_responses_api():
    backend = BackendSpec(type="openai", model="gpt-5-nano", params={
        "reasoning": {"effort": "low", "summary": "auto"}, "text": {"verbosity": "low"},
        "top_p": 0.5})  # fmt: skip
    plan = plan_call(backend, MESSAGES, TOOLS, "required", env={"OPENAI_API_KEY": "sk-1"})
    assert plan.params["model"] == "openai/responses/gpt-5-nano"
    assert plan.params["reasoning_effort"] == {"effort": "low", "summary": "auto"}
    assert plan.params["verbosity"] == "low"
    assert "top_p" not in plan.params and plan.dropped == ("top_p",)


def test_keys_that_are_not_parameters_of_the_provider_are_never_sent():
    backend = BackendSpec(type="claude", model="claude-sonnet-4-5", params={
        "permission_mode": "bypassPermissions", "custom_tools": [], "enable_mcp_command_line": True,
        "command_line_execution_mode": "docker", "agent_config": {}, "top_k": 5,
        "betas": ["computer-use-2025-01-24"]})  # fmt: skip
    plan = plan_call(backend, MESSAGES, None, None, env={"ANTHROPIC_API_KEY": "k"})
    provider_keys = set(plan.params) - {
        "model", "messages", "stream", "stream_options", "max_retries", "num_retries", "api_key"
    }  # fmt: skip
    assert provider_keys == {"top_k", "extra_headers"}
    assert plan.params["extra_headers"] == {"anthropic-beta": "computer-use-2025-01-24"}
    assert set(plan.dropped) == {
        "permission_mode", "custom_tools", "enable_mcp_command_line",
        "command_line_execution_mode", "agent_config",
    }  # fmt: skip


def test_open_servers_get_their_own_knobs_in_the_body():
    backend = BackendSpec(type="vllm", model="Qwen/Qwen3-4B", params={
        "chat_template_kwargs": {"enable_thinking": True}, "top_k": 50,
        "extra_body": {"repetition_penalty": 1.1}})  # fmt: skip
    params = build_call_params(backend, MESSAGES, None, None, env={})
    assert params["extra_body"] == {
        "repetition_penalty": 1.1, "chat_template_kwargs": {"enable_thinking": True}, "top_k": 50,
    }  # fmt: skip
    assert "top_k" not in params and params["api_base"] == "http://localhost:8000/v1"


def test_default_base_url_and_config_key_win():
    backend = BackendSpec(type="zai", model="glm-4.5", api_key="k-config")
    params = build_call_params(backend, MESSAGES, None, None, env={"ZAI_API_KEY": "k-env"})
    assert params["model"] == "openai/glm-4.5"
    assert params["api_base"] == "https://api.z.ai/api/paas/v4"
    assert params["api_key"] == "k-config"
    assert "tools" not in params and "tool_choice" not in params


def test_chatcompletion_uses_base_url_and_dummy_key():
    backend = BackendSpec(type="chatcompletion", model="m1", base_url="http://127.0.0.1:9/v1")
    params = build_call_params(backend, MESSAGES, TOOLS, "required", env={})
    assert params["model"] == "openai/m1"
    assert params["api_base"] == "http://127.0.0.1:9/v1"
    assert params["api_key"] == "not-needed"


@pytest.mark.parametrize(
    ("base_url", "variable"),
    [
        ("https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
        ("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        ("https://api.studio.nebius.ai/v1", "NEBIUS_API_KEY"),
        ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        ("https://api.z.ai/api/paas/v4", "ZAI_API_KEY"),
        ("https://api.moonshot.cn/v1", "KIMI_API_KEY"),
        ("https://api.poe.com/v1", "POE_API_KEY"),
        ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "QWEN_API_KEY"),
    ],
)
def test_chatcompletion_key_is_read_from_the_variable_its_host_implies(base_url, variable):
    backend = BackendSpec(type="chatcompletion", model="m", base_url=base_url)
    params = build_call_params(backend, MESSAGES, None, None, env={variable: "sk-host"})
    assert params["api_key"] == "sk-host"
    assert params["api_base"] == base_url


def test_chatcompletion_without_its_hosts_key_names_the_variables():
    backend = BackendSpec(type="chatcompletion", model="m", base_url="https://api.moonshot.ai/v1")
    with pytest.raises(
        FatalModelError,
        match=r"\(for https://api.moonshot.ai/v1\): set "
        r"MOONSHOT_API_KEY or KIMI_API_KEY",
    ):
        build_call_params(backend, MESSAGES, None, None, env={"OPENAI_API_KEY": "sk-other"})


def test_new_types_default_endpoints_and_keys():
    cases = {
        "nebius": ("nebius/m", "https://api.studio.nebius.ai/v1", "NEBIUS_API_KEY"),
        "moonshot": ("moonshot/m", "https://api.moonshot.cn/v1", "KIMI_API_KEY"),
        "kimi": ("moonshot/m", "https://api.moonshot.cn/v1", "MOONSHOT_API_KEY"),
        "qwen": ("dashscope/m", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
                 "DASHSCOPE_API_KEY"),
        "poe": ("openai/m", "https://api.poe.com/v1", "POE_API_KEY"),
    }  # fmt: skip
    for backend_type, (model, base_url, variable) in cases.items():
        params = build_call_params(
            BackendSpec(type=backend_type, model="m"),
            MESSAGES,
            TOOLS,
            "required",
            env={variable: f"k-{backend_type}"},
        )
        assert (params["model"], params["api_base"], params["api_key"]) == (
            model, base_url, f"k-{backend_type}")  # fmt: skip
        assert params["tools"] == TOOLS


def test_azure_reads_its_usual_variables_when_the_config_omits_them():
    env = {
        "AZURE_OPENAI_API_KEY": "az-key",
        "AZURE_OPENAI_ENDPOINT": "https://team.openai.azure.com/",
        "AZURE_OPENAI_API_VERSION": "2024-12-01-preview",
    }
    params = build_call_params(BackendSpec(type="azure_openai", model="gpt4o-deploy"), MESSAGES,
                               None, None, env=env)  # fmt: skip
    assert (params["model"], params["api_key"], params["api_base"], params["api_version"]) == (
        "azure/gpt4o-deploy",
        "az-key",
        "https://team.openai.azure.com/",
        "2024-12-01-preview",
    )
    own = BackendSpec(
        type="azure_openai",
        model="d",
        api_key="own",
        base_url="https://mine.openai.azure.com/",
        params={"api_version": "2025-01"},
    )
    params = build_call_params(own, MESSAGES, None, None, env=env)
    assert (params["api_key"], params["api_base"], params["api_version"]) == (
        "own", "https://mine.openai.azure.com/", "2025-01")  # fmt: skip
    with pytest.raises(FatalModelError, match="set AZURE_OPENAI_ENDPOINT or give backend.base_url"):
        build_call_params(BackendSpec(type="azure_openai", model="d"), MESSAGES, None, None,
                          env={"AZURE_OPENAI_API_KEY": "k"})  # fmt: skip


def test_gemini_reads_googles_variable_too():
    params = build_call_params(BackendSpec(type="gemini", model="gemini-2.5-flash"), MESSAGES,
                               None, None, env={"GOOGLE_API_KEY": "g"})  # fmt: skip
    assert params["api_key"] == "g"


def test_missing_key_is_fatal_and_names_the_variable():
    backend = BackendSpec(type="claude", model="claude-sonnet-4-5")
    with pytest.raises(FatalModelError, match="set ANTHROPIC_API_KEY"):
        build_call_params(backend, MESSAGES, None, None, env={})


def test_unknown_type_and_missing_base_url_are_fatal():
    with pytest.raises(FatalModelError, match="unknown backend type 'nope'.*openai"):
        build_call_params(BackendSpec(type="nope", model="x"), MESSAGES, None, None, env={})
    with pytest.raises(FatalModelError, match="needs backend.base_url"):
        build_call_params(
            BackendSpec(type="chatcompletion", model="x"), MESSAGES, None, None, env={}
        )


# -- provider built-in tools ------------------------------------------------------------


def _plan(backend_type, model, tools=TOOLS, **switches):
    backend = BackendSpec(type=backend_type, model=model, api_key="k", params=switches)
    return plan_call(backend, MESSAGES, tools, "required" if tools else None, env={})


def test_openai_tools_are_responses_api_tools():
    plan = _plan("openai", "gpt-5-nano", enable_web_search=True, enable_code_interpreter=True)
    assert plan.params["model"] == "openai/responses/gpt-5-nano"
    assert plan.params["tools"] == [
        *TOOLS,
        {"type": "web_search"},
        {"type": "code_interpreter", "container": {"type": "auto"}},
    ]
    assert plan.params["tool_choice"] == "required"
    presentation = _plan("openai", "gpt-5-nano", tools=None, enable_web_search=True)
    assert presentation.params["tools"] == [{"type": "web_search"}]
    assert "tool_choice" not in presentation.params


def test_claude_tools():
    plan = _plan("claude", "claude-sonnet-4-5", enable_web_search=True, enable_code_execution=True)
    assert plan.params["web_search_options"] == {}
    assert plan.params["tools"] == [*TOOLS, {"type": "code_execution_20250825",
                                             "name": "code_execution"}]  # fmt: skip


def test_gemini_before_3_offers_function_tools_as_text_next_to_search():
    plan = _plan("gemini", "gemini-2.5-flash", enable_web_search=True, enable_code_execution=True)
    assert plan.params["web_search_options"] == {}
    assert plan.params["tools"] == [{"codeExecution": {}}]
    assert "tool_choice" not in plan.params
    assert plan.text_tools == ("new_answer",)
    system = plan.params["messages"][0]
    assert system["role"] == "system" and '{"tool": "<name>"' in system["content"]
    assert "- new_answer:" in system["content"]


def test_gemini_3_combines_search_with_function_tools():
    plan = _plan("gemini", "gemini-3-pro-preview", enable_web_search=True)
    assert plan.params["tools"] == TOOLS and plan.text_tools is None
    assert plan.params["include_server_side_tool_invocations"] is True
    assert plan.params["web_search_options"] == {}


def test_gemini_search_without_function_tools_is_plain():
    plan = _plan("gemini", "gemini-2.5-pro", tools=None, enable_web_search=True)
    assert plan.text_tools is None and "tools" not in plan.params
    assert plan.params["messages"] == MESSAGES


def test_grok_openrouter_and_qwen_search():
    assert _plan("grok", "grok-4", enable_web_search=True).params["web_search_options"] == {}
    assert _plan("openrouter", "x/y", enable_web_search=True).params["web_search_options"] == {}
    qwen = _plan("qwen", "qwen-plus", enable_web_search=True).params
    assert qwen["extra_body"] == {"enable_search": True} and "web_search_options" not in qwen


def test_a_switch_the_provider_lacks_is_fatal_in_the_worker_too():
    with pytest.raises(FatalModelError, match="'lmstudio' cannot use the provider's web_search"):
        _plan("lmstudio", "m", enable_web_search=True)


class StatusError(Exception):
    def __init__(self, status_code, message):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 529])
def test_retryable_statuses(status):
    error = classify_error(StatusError(status, f"provider says {status}"))
    assert isinstance(error, RetryableModelError)
    assert error.message == f"provider says {status}"
    assert error.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_fatal_statuses(status):
    error = classify_error(StatusError(status, "no"))
    assert isinstance(error, FatalModelError) and not error.retryable


def test_timeouts_and_connection_errors_are_retryable():
    assert isinstance(classify_error(TimeoutError("slow")), RetryableModelError)
    assert isinstance(classify_error(ConnectionResetError("reset")), RetryableModelError)
    assert isinstance(classify_error(ValueError("weird")), FatalModelError)

"""Backend table: key variables (inferred from a base_url host too), built-in tools, params."""

from __future__ import annotations

import pytest
from massgen_proto.providers import (
    BACKENDS,
    api_key_envs,
    backend_for_model,
    builtin_tool_problem,
    param_problem,
)


@pytest.mark.parametrize(
    ("base_url", "names"),
    [
        ("https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",)),
        ("https://api.together.xyz/v1", ("TOGETHER_API_KEY",)),
        ("https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",)),
        ("https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
        ("https://api.studio.nebius.ai/v1", ("NEBIUS_API_KEY",)),
        ("https://api.studio.nebius.com/v1/", ("NEBIUS_API_KEY",)),
        ("https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)),
        ("https://api.z.ai/api/paas/v4", ("ZAI_API_KEY",)),
        ("https://open.bigmodel.cn/api/paas/v4", ("ZAI_API_KEY",)),
        ("https://api.moonshot.ai/v1", ("MOONSHOT_API_KEY", "KIMI_API_KEY")),
        ("https://api.moonshot.cn/v1", ("MOONSHOT_API_KEY", "KIMI_API_KEY")),
        ("https://api.poe.com/v1", ("POE_API_KEY",)),
        (
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            ("QWEN_API_KEY", "DASHSCOPE_API_KEY"),
        ),
        ("HTTPS://API.CEREBRAS.AI:443/v1", ("CEREBRAS_API_KEY",)),
    ],
)
def test_chatcompletion_key_follows_the_base_url_host(base_url, names):
    assert api_key_envs("chatcompletion", base_url) == names


@pytest.mark.parametrize(
    "base_url",
    [
        "http://localhost:8000/v1",
        "https://notcerebras.ai/v1",  # contains the name, is not the domain
        "https://cerebras.ai.evil.example/v1",
        "https://evil.example/v1?u=api.cerebras.ai",
        "https://1234.cn-hangzhou.fc.aliyuncs.com/v1",  # anyone's function, not DashScope
        None,
    ],
)
def test_no_key_goes_to_a_host_that_only_looks_like_a_provider(base_url):
    assert api_key_envs("chatcompletion", base_url) == ()


def test_typed_backends_read_their_own_variables_first():
    assert api_key_envs("gemini") == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    assert api_key_envs("moonshot") == api_key_envs("kimi") == ("MOONSHOT_API_KEY", "KIMI_API_KEY")
    assert api_key_envs("qwen", "https://api.cerebras.ai/v1") == (
        "QWEN_API_KEY", "DASHSCOPE_API_KEY")  # fmt: skip
    assert api_key_envs("vllm") == () and api_key_envs("nope") == ()


def test_new_backend_types_reach_litellm_adapters_with_massgen_defaults():
    assert (BACKENDS["nebius"].litellm_prefix, BACKENDS["nebius"].default_base_url) == (
        "nebius/", "https://api.studio.nebius.ai/v1")  # fmt: skip
    assert BACKENDS["moonshot"].provider == BACKENDS["kimi"].provider == "moonshot"
    assert BACKENDS["qwen"].litellm_prefix == "dashscope/"
    # litellm's poe adapter lists no tools; Poe speaks the OpenAI protocol.
    assert (BACKENDS["poe"].litellm_prefix, BACKENDS["poe"].default_base_url) == (
        "openai/", "https://api.poe.com/v1")  # fmt: skip
    assert backend_for_model("kimi-k2-0905-preview") == ("moonshot", "kimi-k2-0905-preview")
    assert backend_for_model("dashscope/qwen-plus") == ("qwen", "qwen-plus")
    assert backend_for_model("nebius/meta-llama/Llama-3.3-70B") == (
        "nebius", "meta-llama/Llama-3.3-70B")  # fmt: skip


def test_builtin_tools_per_type():
    assert builtin_tool_problem("openai", "enable_code_interpreter") is None
    assert builtin_tool_problem("claude", "enable_code_interpreter") is None  # either spelling
    assert builtin_tool_problem("gemini", "enable_code_execution") is None
    assert builtin_tool_problem("grok", "enable_web_search") is None
    assert builtin_tool_problem("qwen", "enable_web_search") is None
    problem = builtin_tool_problem("azure_openai", "enable_web_search")
    assert problem and "'azure_openai' has no provider web search" in problem
    assert "remove 'enable_web_search'" in problem


def test_params_per_type():
    assert param_problem("openai", "top_p") is None
    assert param_problem("openai", "text") is None
    assert param_problem("vllm", "chat_template_kwargs") is None
    assert param_problem("claude", "betas") is None
    assert param_problem("azure_openai", "api_version") is None
    for backend_type, key in [("openai", "permission_mode"), ("openai", "chat_template_kwargs"),
                              ("claude", "extra_body"), ("gemini", "betas")]:  # fmt: skip
        assert param_problem(backend_type, key) == (
            f"not a parameter of backend type {backend_type!r}, so it is not sent to the provider"
        )

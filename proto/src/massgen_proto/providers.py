"""Backend types of the run config, and how each reaches a model through litellm.

Pure data: the CLI uses it to validate configs and pick a provider for ``--model``;
the worker uses it to build the litellm call; the orchestrator uses ``provider`` to
route a turn to the right worker pool.

Also here, because config validation (no litellm) and the worker (litellm) must agree:

- which environment variables hold a backend's key, including the key a generic
  ``chatcompletion`` backend gets from its ``base_url`` host (``api_key_envs``);
- which provider built-in tools (web search, code execution) a backend type can use
  (``builtin_tool_problem``);
- which config keys are parameters of a backend type's provider call (``param_problem``):
  only those are ever sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "BACKENDS",
    "BUILTIN_TOOL_KEYS",
    "CODE_EXECUTION",
    "Backend",
    "KEY_HOSTS",
    "UNSUPPORTED_TYPES",
    "WEB_SEARCH",
    "api_key_envs",
    "backend_for_model",
    "builtin_tool_problem",
    "host_of",
    "known_types",
    "param_problem",
]

WEB_SEARCH = "web_search"
CODE_EXECUTION = "code_execution"

BUILTIN_TOOL_KEYS: dict[str, str] = {
    "enable_web_search": WEB_SEARCH,
    "enable_code_interpreter": CODE_EXECUTION,
    "enable_code_execution": CODE_EXECUTION,
}
"""MassGen's switches for a provider's own tools -> the tool they turn on. MassGen names
the code tool after the provider (OpenAI's code interpreter, Claude's and Gemini's code
execution); both spellings mean "run code in the provider's sandbox"."""

# Parameters of an OpenAI-style chat call that any chat backend may be given. The worker
# still sends one only when litellm lists it for the model (gpt-5 takes no top_p).
_CHAT_PARAMS = frozenset(
    {
        "top_p",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "stop",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "parallel_tool_calls",
        "reasoning_effort",
        "max_completion_tokens",
        "service_tier",
    }
)
# MassGen's nested spellings, translated by the worker: reasoning.effort -> reasoning_effort,
# reasoning.summary -> reasoning summaries, text.verbosity -> verbosity.
_MASSGEN_SHAPED = frozenset({"reasoning", "text"})
# Servers speaking the OpenAI protocol take extra sampling knobs in the request body.
_OPEN_SERVER_PARAMS = frozenset(
    {"top_k", "min_p", "repetition_penalty", "extra_body", "chat_template_kwargs"}
)


@dataclass(frozen=True, slots=True)
class Backend:
    """How one config ``backend.type`` is served."""

    type: str
    """The config's ``backend.type`` value."""
    provider: str
    """Worker pool (and turn subject token) that serves it."""
    litellm_prefix: str
    """Prefix litellm uses to pick its provider adapter, e.g. ``anthropic/``."""
    api_key_env: str | None
    """Environment variable holding the key, or None when no key is needed."""
    default_base_url: str | None = None
    """Endpoint used when the config gives no ``base_url``."""
    needs_base_url: bool = False
    """True when the config must name the endpoint (generic OpenAI-protocol servers)."""
    api_key_fallbacks: tuple[str, ...] = ()
    """Further variables read, in order, when ``api_key_env`` is unset: the names MassGen
    also accepts (``GOOGLE_API_KEY`` for Gemini, ``KIMI_API_KEY`` for Moonshot)."""
    builtin_tools: frozenset[str] = frozenset()
    """Provider built-in tools (``web_search``, ``code_execution``) litellm can reach."""
    params: frozenset[str] = _CHAT_PARAMS
    """Config keys that are parameters of this backend's provider call."""


_OPENAI_PARAMS = _CHAT_PARAMS | _MASSGEN_SHAPED | {"verbosity", "extra_body"}
_OPEN_PARAMS = _CHAT_PARAMS | _MASSGEN_SHAPED | _OPEN_SERVER_PARAMS
_HOSTED_PARAMS = _CHAT_PARAMS | _MASSGEN_SHAPED | {"extra_body", "top_k"}

_WEB_AND_CODE = frozenset({WEB_SEARCH, CODE_EXECUTION})

BACKENDS: dict[str, Backend] = {
    b.type: b
    for b in (
        Backend(
            "openai", "openai", "openai/", "OPENAI_API_KEY",
            builtin_tools=_WEB_AND_CODE, params=_OPENAI_PARAMS,
        ),
        Backend(
            "claude", "anthropic", "anthropic/", "ANTHROPIC_API_KEY",
            builtin_tools=_WEB_AND_CODE,
            params=_CHAT_PARAMS | _MASSGEN_SHAPED | {"top_k", "thinking", "betas"},
        ),
        Backend(
            "gemini", "gemini", "gemini/", "GEMINI_API_KEY",
            api_key_fallbacks=("GOOGLE_API_KEY",), builtin_tools=_WEB_AND_CODE,
            params=_CHAT_PARAMS | _MASSGEN_SHAPED | {"top_k", "thinking", "safety_settings"},
        ),
        Backend(
            "grok", "xai", "xai/", "XAI_API_KEY",
            builtin_tools=frozenset({WEB_SEARCH}), params=_HOSTED_PARAMS,
        ),
        # The endpoint and API version come from the config or from AZURE_OPENAI_ENDPOINT
        # and AZURE_OPENAI_API_VERSION (read by the worker).
        Backend(
            "azure_openai", "azure", "azure/", "AZURE_OPENAI_API_KEY",
            params=_OPENAI_PARAMS | {"api_version"},
        ),
        Backend(
            "zai", "zai", "openai/", "ZAI_API_KEY", "https://api.z.ai/api/paas/v4",
            params=_HOSTED_PARAMS,
        ),
        Backend("lmstudio", "lmstudio", "lm_studio/", None, "http://localhost:1234/v1",
                params=_OPEN_PARAMS),
        Backend("vllm", "vllm", "hosted_vllm/", None, "http://localhost:8000/v1",
                params=_OPEN_PARAMS),
        Backend("sglang", "sglang", "openai/", None, "http://localhost:30000/v1",
                params=_OPEN_PARAMS),
        Backend(
            "openrouter", "openrouter", "openrouter/", "OPENROUTER_API_KEY",
            builtin_tools=frozenset({WEB_SEARCH}), params=_HOSTED_PARAMS,
        ),
        Backend("groq", "groq", "groq/", "GROQ_API_KEY", params=_HOSTED_PARAMS),
        Backend("together", "together", "together_ai/", "TOGETHER_API_KEY", params=_HOSTED_PARAMS),
        Backend("fireworks", "fireworks", "fireworks_ai/", "FIREWORKS_API_KEY",
                params=_HOSTED_PARAMS),
        Backend("cerebras", "cerebras", "cerebras/", "CEREBRAS_API_KEY", params=_HOSTED_PARAMS),
        Backend(
            "nebius", "nebius", "nebius/", "NEBIUS_API_KEY", "https://api.studio.nebius.ai/v1",
            params=_HOSTED_PARAMS,
        ),
        Backend(
            "moonshot", "moonshot", "moonshot/", "MOONSHOT_API_KEY", "https://api.moonshot.cn/v1",
            api_key_fallbacks=("KIMI_API_KEY",), params=_HOSTED_PARAMS,
        ),
        Backend(
            "kimi", "moonshot", "moonshot/", "MOONSHOT_API_KEY", "https://api.moonshot.cn/v1",
            api_key_fallbacks=("KIMI_API_KEY",), params=_HOSTED_PARAMS,
        ),
        Backend(
            "qwen", "qwen", "dashscope/", "QWEN_API_KEY",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            api_key_fallbacks=("DASHSCOPE_API_KEY",), builtin_tools=frozenset({WEB_SEARCH}),
            params=_HOSTED_PARAMS,
        ),
        # litellm's own poe adapter lists no tools, so a team's workflow tools would be
        # dropped: Poe is reached as the OpenAI-protocol server it is.
        Backend("poe", "poe", "openai/", "POE_API_KEY", "https://api.poe.com/v1",
                params=_HOSTED_PARAMS),
        Backend("chatcompletion", "chatcompletion", "openai/", None, needs_base_url=True,
                params=_OPEN_PARAMS),
        Backend("local", "local", "openai/", None, params=_OPEN_PARAMS),
    )
}  # fmt: skip

UNSUPPORTED_TYPES: dict[str, str] = {
    "claude_code": (
        "it runs the Claude Code CLI agent with its own tools, permissions and workspace "
        "inside the worker, while this project's agents are model calls whose tools the "
        "mcp-gateway brokers; use type 'claude' for Anthropic models"
    ),
    "ag2": "AG2 agents are not supported; use a model backend",
}

KEY_HOSTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("cerebras.ai",), ("CEREBRAS_API_KEY",)),
    (("together.xyz", "together.ai"), ("TOGETHER_API_KEY",)),
    (("fireworks.ai",), ("FIREWORKS_API_KEY",)),
    (("groq.com",), ("GROQ_API_KEY",)),
    (("nebius.ai", "nebius.com"), ("NEBIUS_API_KEY",)),
    (("openrouter.ai",), ("OPENROUTER_API_KEY",)),
    (("z.ai", "bigmodel.cn"), ("ZAI_API_KEY",)),
    (("moonshot.ai", "moonshot.cn"), ("MOONSHOT_API_KEY", "KIMI_API_KEY")),
    (("poe.com",), ("POE_API_KEY",)),
    # DashScope's own hosts only: other *.aliyuncs.com hosts (Function Compute, OSS) are
    # any cloud customer's.
    (
        ("dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com", "dashscope-us.aliyuncs.com"),
        ("QWEN_API_KEY", "DASHSCOPE_API_KEY"),
    ),
    (("openai.com",), ("OPENAI_API_KEY",)),
)
"""Provider domains -> their key variables, for a ``chatcompletion`` backend without
``api_key`` (MassGen's mapping). A key goes only to its own provider's domain or a
subdomain of it, never to a host that merely contains the name (MassGen matches any
URL containing it)."""


def host_of(url: str | None) -> str:
    """The lowercased host name of a URL ('' when there is none)."""
    if not url:
        return ""
    return (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()


def api_key_envs(backend_type: str, base_url: str | None = None) -> tuple[str, ...]:
    """Environment variables that hold the key of a backend, in the order they are read.

    Args:
        backend_type: the config's ``backend.type``.
        base_url: the config's ``backend.base_url``; for ``chatcompletion`` its host
            picks the provider's variable (``api.cerebras.ai`` -> ``CEREBRAS_API_KEY``).

    Returns:
        The variable names; empty when the backend needs no key (local servers, an
        unknown host) or the type is unknown.
    """
    spec = BACKENDS.get(backend_type)
    if spec is None:
        return ()
    if spec.api_key_env:
        return (spec.api_key_env, *spec.api_key_fallbacks)
    if backend_type != "chatcompletion":
        return ()
    host = host_of(base_url)
    for domains, names in KEY_HOSTS:
        if any(host == domain or host.endswith("." + domain) for domain in domains):
            return names
    return ()


def builtin_tool_problem(backend_type: str, key: str) -> str | None:
    """Why backend ``backend_type`` cannot honour switch ``key`` (``enable_web_search``…),
    or None when it can."""
    tool = BUILTIN_TOOL_KEYS[key]
    spec = BACKENDS.get(backend_type)
    if spec is None or tool in spec.builtin_tools:
        return None
    able = sorted(t for t, s in BACKENDS.items() if tool in s.builtin_tools)
    what = "web search" if tool == WEB_SEARCH else "code execution"
    return (
        f"backend type {backend_type!r} has no provider {what} that this project can "
        f"reach through litellm (types with it: {', '.join(able)}); remove {key!r} or "
        "give the agent an MCP tool for it"
    )


def param_problem(backend_type: str, key: str) -> str | None:
    """Why config key ``key`` is not sent with ``backend_type``'s calls, or None when it is
    one of the provider's parameters."""
    spec = BACKENDS.get(backend_type)
    if spec is None or key in spec.params:
        return None
    return f"not a parameter of backend type {backend_type!r}, so it is not sent to the provider"


# First matching prefix wins; used by quick mode (``--model NAME``).
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("claude", "claude"),
    ("gemini", "gemini"),
    ("grok", "grok"),
    ("glm-", "zai"),
    ("kimi-", "moonshot"),
    ("qwen2.5-coder", "local"),
    ("smollm2", "local"),
)

_LITELLM_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "claude",
    "gemini": "gemini",
    "xai": "grok",
    "azure": "azure_openai",
    "openrouter": "openrouter",
    "groq": "groq",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "cerebras": "cerebras",
    "nebius": "nebius",
    "moonshot": "moonshot",
    "dashscope": "qwen",
    "hosted_vllm": "vllm",
    "lm_studio": "lmstudio",
}


def known_types() -> list[str]:
    """Return every supported ``backend.type``, sorted."""
    return sorted(BACKENDS)


def backend_for_model(model: str) -> tuple[str, str]:
    """Pick a backend type for a bare model name (quick mode).

    Args:
        model: a model name such as ``gpt-4o-mini``, ``claude-sonnet-4-5`` or a
            litellm ``provider/model`` name such as ``groq/llama-3.1-8b-instant``.

    Returns:
        ``(backend_type, model_name)`` with the provider prefix removed.

    Raises:
        ValueError: when no provider can be inferred; the message lists the ways to say it.
    """
    if "/" in model:
        prefix, _, rest = model.partition("/")
        if prefix in _LITELLM_PROVIDERS:
            return _LITELLM_PROVIDERS[prefix], rest
        if prefix in BACKENDS:
            return prefix, rest
    lowered = model.lower()
    for prefix, backend_type in _MODEL_PREFIXES:
        if lowered.startswith(prefix):
            return backend_type, model
    raise ValueError(
        f"cannot tell which provider serves model {model!r}: name it as 'provider/model' "
        f"(providers: {', '.join(sorted(_LITELLM_PROVIDERS))}) or pass --backend TYPE "
        f"(types: {', '.join(known_types())})"
    )

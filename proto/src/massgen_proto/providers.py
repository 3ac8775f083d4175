"""Backend types of the run config, and how each reaches a model through litellm.

Pure data: the CLI uses it to validate configs and pick a provider for ``--model``;
the worker uses it to build the litellm call; the orchestrator uses ``provider`` to
route a turn to the right worker pool.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BACKENDS", "Backend", "backend_for_model", "known_types"]


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


BACKENDS: dict[str, Backend] = {
    b.type: b
    for b in (
        Backend("openai", "openai", "openai/", "OPENAI_API_KEY"),
        Backend("claude", "anthropic", "anthropic/", "ANTHROPIC_API_KEY"),
        Backend("gemini", "gemini", "gemini/", "GEMINI_API_KEY"),
        Backend("grok", "xai", "xai/", "XAI_API_KEY"),
        Backend("azure_openai", "azure", "azure/", "AZURE_OPENAI_API_KEY"),
        Backend("zai", "zai", "openai/", "ZAI_API_KEY", "https://api.z.ai/api/paas/v4"),
        Backend("lmstudio", "lmstudio", "lm_studio/", None, "http://localhost:1234/v1"),
        Backend("vllm", "vllm", "hosted_vllm/", None, "http://localhost:8000/v1"),
        Backend("sglang", "sglang", "openai/", None, "http://localhost:30000/v1"),
        Backend("openrouter", "openrouter", "openrouter/", "OPENROUTER_API_KEY"),
        Backend("groq", "groq", "groq/", "GROQ_API_KEY"),
        Backend("together", "together", "together_ai/", "TOGETHER_API_KEY"),
        Backend("fireworks", "fireworks", "fireworks_ai/", "FIREWORKS_API_KEY"),
        Backend("cerebras", "cerebras", "cerebras/", "CEREBRAS_API_KEY"),
        Backend("chatcompletion", "chatcompletion", "openai/", None, needs_base_url=True),
        Backend("local", "local", "openai/", None),
    )
}

UNSUPPORTED_TYPES: dict[str, str] = {
    "claude_code": (
        "it drives the Claude Code CLI agent through its own SDK, which cannot be called "
        "through litellm; use type 'claude' for Anthropic models"
    ),
    "ag2": "AG2 agents are not supported; use a model backend",
}

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

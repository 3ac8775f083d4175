"""The config's provider parameters (``Backend.params``) as one litellm call takes them.

Only what the backend type lists (``providers.BACKENDS[type].params``) is ever sent, and
of OpenAI's parameters only those litellm lists for the model: litellm's per-model tables
decide ``top_p``, ``seed``, ``reasoning.effort``... (``needs_tables`` says when a call
must read them, which loads litellm). A parameter that is not sent is reported back as
dropped, for the worker to log.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from massgen_proto.json_types import JsonObject, JsonValue
from massgen_proto.messages import BackendSpec
from massgen_proto.providers import BACKENDS, BUILTIN_TOOL_KEYS

from .direct import DIRECT_TYPES
from .litellm_loader import preload

__all__ = ["OPENAI_PARAMS", "needs_tables", "provider_params", "supported_params"]

_VERBOSITY_TYPES = frozenset({"openai", "azure_openai"})
# Backends whose litellm adapter takes a provider's own parameters (top_k, thinking,
# safety_settings) as keyword arguments; OpenAI-protocol servers get them in the body.
_KWARG_TYPES = frozenset({"claude", "gemini"})


# The names of ``litellm.OPENAI_CHAT_COMPLETION_PARAMS`` that a backend type can be given
# (``Backend.params``, after the renames below); a test keeps it equal to litellm's.
OPENAI_PARAMS = frozenset(
    {"api_version", "frequency_penalty", "logit_bias", "logprobs", "max_completion_tokens",
     "parallel_tool_calls", "presence_penalty", "reasoning_effort", "seed", "service_tier",
     "stop", "thinking", "top_logprobs", "top_p", "user", "verbosity"}
)  # fmt: skip


def _translated(backend_type: str, key: str, value: JsonValue) -> tuple[str, JsonValue] | None:
    """A config parameter as litellm takes it (``reasoning`` -> ``reasoning_effort``,
    ``text`` -> ``verbosity``), or None when nothing of it is sent."""
    if key == "reasoning":
        effort = value.get("effort") if isinstance(value, Mapping) else None
        summary = value.get("summary") if isinstance(value, Mapping) else None
        if backend_type not in _VERBOSITY_TYPES:
            summary = None
        if effort is None:
            return None
        return "reasoning_effort", ({"effort": effort, "summary": summary} if summary else effort)
    if key == "text":
        verbosity = value.get("verbosity") if isinstance(value, Mapping) else None
        if verbosity is None or backend_type not in _VERBOSITY_TYPES:
            return None
        return "verbosity", verbosity
    return key, value


def needs_tables(backend: BackendSpec) -> bool:
    """Whether planning this backend's calls reads litellm's per-model parameter tables
    (an OpenAI parameter in the config: litellm says whether the model takes it)."""
    spec = BACKENDS.get(backend.type)
    if spec is None:
        return False
    for key, value in backend.params.items():
        if value is None or key in BUILTIN_TOOL_KEYS or key not in spec.params:
            continue
        if key in ("extra_body", "betas", "api_version"):
            continue
        translated = _translated(backend.type, key, value)
        if translated is None:
            continue
        if translated[0] in OPENAI_PARAMS or backend.type not in DIRECT_TYPES | _KWARG_TYPES:
            return True
    return False


def provider_params(
    backend: BackendSpec, supported: Callable[[], frozenset[str]]
) -> tuple[JsonObject, JsonObject, list[str]]:
    """``(keyword arguments, extra body, dropped keys)`` from the config's parameters.

    ``supported()`` (litellm's parameters of the model) is only asked about a parameter
    whose fate it decides (``needs_tables``): an OpenAI parameter, or a provider's own
    one for a type litellm may list it for (fireworks: ``top_k``). Claude's and Gemini's
    own parameters are keyword arguments either way; a direct type's are never among
    litellm's listed ones (a test checks it), so they go to the body without asking.
    """
    spec = BACKENDS[backend.type]
    out: JsonObject = {}
    body: JsonObject = {}
    dropped: list[str] = []
    for key, value in backend.params.items():
        if value is None or key in BUILTIN_TOOL_KEYS:
            continue
        if key not in spec.params:
            dropped.append(key)  # never sent: not a parameter of this backend type
            continue
        if key in ("reasoning", "text"):
            translated = _translated(backend.type, key, value)
            if translated is None:
                continue
            key, value = translated
        elif key == "extra_body":
            if isinstance(value, Mapping):
                body.update(value)
            continue
        elif key == "betas":
            betas = [value] if isinstance(value, str) else list(value)
            out["extra_headers"] = {"anthropic-beta": ",".join(map(str, betas))}
            continue
        elif key == "api_version":
            out[key] = value
            continue
        if key not in OPENAI_PARAMS and backend.type in _KWARG_TYPES:
            out[key] = value
        elif key not in OPENAI_PARAMS and backend.type in DIRECT_TYPES:
            body[key] = value  # a server's own sampling knob (top_k, min_p, ...)
        elif key in supported():
            out[key] = value
        elif key in OPENAI_PARAMS:
            dropped.append(key)  # an OpenAI parameter this model does not take (gpt-5: top_p)
        else:
            body[key] = value
    return out, body, dropped


@functools.lru_cache(maxsize=512)
def supported_params(model: str, provider: str) -> frozenset[str]:
    """The OpenAI-style parameters litellm takes for ``model`` of ``provider``."""
    litellm = preload()
    try:
        names = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider)
    except Exception:  # noqa: BLE001 - a model litellm cannot place: send no OpenAI-style
        names = None  # parameter beyond the typed keys rather than one it may refuse
    return frozenset(names or ())

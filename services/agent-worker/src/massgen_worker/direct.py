"""Which model calls can skip litellm, and the HTTP request they send instead.

Pure: no I/O, no litellm, no httpx. ``llm.plan_call`` plans every call as litellm
keyword arguments; for the calls ``litellm_reason`` finds nothing litellm-only in,
``wire_request`` turns that plan into the ``POST {base}/chat/completions`` body and
headers litellm 1.106.2 itself would send (``openai_http`` sends it). What "the same"
means was measured, not assumed: ``tests/unit/worker/test_worker_direct_wire.py`` sends
each case through litellm to a recording server and compares with ``wire_request``.

What litellm does on the wire for the direct types, and what is copied here:

- the model loses its litellm prefix (``hosted_vllm/Qwen/Qwen3-4B`` -> ``Qwen/Qwen3-4B``);
- ``extra_body`` is merged into the body; ``api_key`` becomes ``Authorization: Bearer``;
- message keys whose value is None are left out (``content`` of a tool-call message);
- through the openai client (every direct type but vllm): ``OpenAI-Organization`` /
  ``OpenAI-Project`` from ``OPENAI_ORGANIZATION`` or ``OPENAI_ORG_ID`` /
  ``OPENAI_PROJECT_ID``, and, for the ``openai/`` types, a tool schema ``pattern``
  Python cannot compile is dropped (here: such a call goes to litellm);
- vllm: ``additionalProperties: false`` and every ``strict`` key are removed from tool
  schemas, recursively (as litellm does, even a property named ``strict``).

Everything else that litellm would change sends the call to litellm (``litellm_reason``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from massgen_proto.json_types import JsonObject, JsonValue, items_of, object_of, objects_of
from massgen_proto.providers import BACKENDS, host_of

__all__ = [
    "DIRECT_TYPES",
    "WireRequest",
    "litellm_reason",
    "wire_request",
]

DIRECT_TYPES: frozenset[str] = frozenset(
    {
        "chatcompletion",
        "local",
        "sglang",
        "vllm",
        "lmstudio",
        "zai",
        "poe",
        "openai",
        "nebius",
        "qwen",
    }
)
"""Backend types whose litellm adapter sends plain OpenAI chat completions (checked per
call by ``litellm_reason``). Not here, because litellm rewrites their requests or
responses: claude, gemini, grok, azure_openai (other protocols or URL schemes); groq
(``max_completion_tokens`` -> ``max_tokens``, JSON mode as a tool), together (drops tools
per its model registry), fireworks (model path, ``tool_choice``), cerebras (drops
``stream_options``), openrouter (``usage.include``, model prefixes), moonshot/kimi
(rewrites ``tool_choice: required`` into a user message)."""

_OPENAI_CLIENT_LESS = frozenset({"vllm"})
"""Direct types litellm reaches with its own HTTP handler instead of the openai client."""
_OPENAI_PROVIDER_PREFIX = "openai/"
_REASONING_NAME = re.compile(r"gpt-5|gpt-6|(^|/)o\d")
_LITELLM_ONLY_KEYS = frozenset(
    {"model", "messages", "api_key", "api_base", "max_retries", "num_retries", "extra_body",
     "extra_headers"}
)  # fmt: skip
_TOP_LEVEL_COMBINATORS = frozenset({"allOf", "anyOf", "oneOf", "enum", "const", "not"})
_OPENAI_HOST = "api.openai.com"


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One chat-completions request as sent over HTTP."""

    url: str
    headers: dict[str, str]
    body: JsonObject


def litellm_reason(
    backend_type: str, params: Mapping[str, JsonValue], builtin: frozenset[str] = frozenset()
) -> str | None:
    """Why this planned call needs litellm, or None when ``wire_request`` sends it as is.

    Args:
        backend_type: the config's ``backend.type``.
        params: the call's litellm keyword arguments (``CallPlan.params``).
        builtin: the provider's own tools the call turns on (``CallPlan.builtin``).
    """
    if backend_type not in DIRECT_TYPES:
        return f"backend type {backend_type!r} uses litellm's own adapter"
    if builtin:
        return "provider built-in tools"
    prefix = BACKENDS[backend_type].litellm_prefix
    model = str(params.get("model", ""))
    if not model.startswith(prefix):
        return "model routed by litellm"
    name = model[len(prefix) :]
    if name.startswith("responses/"):
        return "Responses API"
    if prefix == _OPENAI_PROVIDER_PREFIX and _REASONING_NAME.search(name):
        return "litellm maps parameters of OpenAI reasoning models"
    if backend_type == "nebius" and "max_completion_tokens" in params:
        return "litellm maps max_completion_tokens for nebius"
    base = _text(params, "api_base")
    if base is not None and ("?" in base or "#" in base):
        return "base_url with a query"
    for message in items_of(params.get("messages")):
        if not isinstance(message, Mapping) or "cache_control" in message:
            return "message with cache_control"
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            return "message content parts"
    hosted = prefix == _OPENAI_PROVIDER_PREFIX and (
        base is None or host_of(base) == _OPENAI_HOST or host_of(base).endswith("." + _OPENAI_HOST)
    )
    for tool in items_of(params.get("tools")):
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            return "non-function tool"
        function = tool.get("function")
        if not isinstance(function, Mapping):
            return "non-function tool"
        if _has_key(tool, "cache_control"):
            return "tool with cache_control"
        schema = function.get("parameters")
        if prefix == _OPENAI_PROVIDER_PREFIX and isinstance(schema, Mapping):
            if _has_bad_pattern(schema):
                return "tool schema pattern Python cannot compile"
            if hosted and _TOP_LEVEL_COMBINATORS & schema.keys():
                return "tool schema with a top-level combinator"
    return None


def wire_request(
    backend_type: str, params: Mapping[str, JsonValue], env: Mapping[str, str]
) -> WireRequest:
    """The HTTP request litellm sends for this plan (``litellm_reason`` must be None).

    Args:
        backend_type: the config's ``backend.type``.
        params: the call's litellm keyword arguments (``CallPlan.params``).
        env: the environment (OpenAI organization/project, default OpenAI base URL).
    """
    prefix = BACKENDS[backend_type].litellm_prefix
    body: JsonObject = {"model": str(params["model"])[len(prefix) :]}
    body["messages"] = [
        {key: value for key, value in message.items() if value is not None}
        for message in objects_of(params["messages"])
    ]
    for key, value in params.items():
        if key not in _LITELLM_ONLY_KEYS:
            body[key] = value
    if backend_type == "vllm" and "tools" in body:
        tools = items_of(body["tools"])
        body["tools"] = [_without_strict(_without_closed_objects(tool)) for tool in tools]
    body.update(object_of(params.get("extra_body")))

    base = _text(params, "api_base") or (
        env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_BASE") or "https://api.openai.com/v1"
    )
    base = base.rstrip("/")
    if backend_type in _OPENAI_CLIENT_LESS and "chat/completions" in base:
        url = base
    else:
        url = base + "/chat/completions"

    headers = {
        "Authorization": f"Bearer {params['api_key']}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    if backend_type not in _OPENAI_CLIENT_LESS:
        organization = env.get("OPENAI_ORGANIZATION") or env.get("OPENAI_ORG_ID")
        if organization:
            headers["OpenAI-Organization"] = organization
        if env.get("OPENAI_PROJECT_ID"):
            headers["OpenAI-Project"] = env["OPENAI_PROJECT_ID"]
    headers.update({k: str(v) for k, v in object_of(params.get("extra_headers")).items()})
    return WireRequest(url=url, headers=headers, body=body)


def _text(params: Mapping[str, JsonValue], key: str) -> str | None:
    """A string parameter (None: missing, or not a string)."""
    value = params.get(key)
    return value if isinstance(value, str) else None


def _has_key(value: JsonValue, key: str) -> bool:
    if isinstance(value, Mapping):
        return key in value or any(_has_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_has_key(v, key) for v in value)
    return False


def _has_bad_pattern(value: JsonValue) -> bool:
    """A ``pattern`` string or ``patternProperties`` name anywhere that ``re`` rejects."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "pattern" and isinstance(item, str) and not _compiles(item):
                return True
            if key == "patternProperties" and isinstance(item, Mapping):
                if any(isinstance(name, str) and not _compiles(name) for name in item):
                    return True
            if _has_bad_pattern(item):
                return True
    elif isinstance(value, list):
        return any(_has_bad_pattern(item) for item in value)
    return False


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except (re.error, RecursionError):
        return False
    return True


def _without_closed_objects(value: JsonValue) -> JsonValue:
    """A copy without ``additionalProperties: false`` (litellm's vllm adapter)."""
    if isinstance(value, Mapping):
        return {
            key: _without_closed_objects(item)
            for key, item in value.items()
            if not (key == "additionalProperties" and item is False)
        }
    if isinstance(value, list):
        return [_without_closed_objects(item) for item in value]
    return value


def _without_strict(value: JsonValue) -> JsonValue:
    """A copy without any ``strict`` key (litellm's vllm adapter)."""
    if isinstance(value, Mapping):
        return {key: _without_strict(item) for key, item in value.items() if key != "strict"}
    if isinstance(value, list):
        return [_without_strict(item) for item in value]
    return value

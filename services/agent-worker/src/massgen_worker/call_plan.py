"""One model call planned: a turn's backend and conversation as one litellm call.

``plan_call`` maps a turn's backend to the keyword arguments of ``litellm.acompletion``:
the key (from the config, the backend's variables, or for ``chatcompletion`` the variable
its ``base_url`` host implies), the endpoint (Azure's from ``AZURE_OPENAI_ENDPOINT``), the
config's provider parameters (``provider_params``: no other key is ever sent), and the
provider's own tools:

============  =================================================================
backend type  ``enable_web_search`` / ``enable_code_interpreter|execution``
============  =================================================================
openai        Responses API tools ``web_search`` / ``code_interpreter``
claude        ``web_search_options`` (sent as ``web_search_20250305``) /
              tool ``code_execution_20250825``
gemini        ``web_search_options`` (``googleSearch``) / ``codeExecution``;
              before Gemini 3, search and function tools cannot share a request,
              so the function tools are offered as text (``provider_tools``)
grok          ``web_search_options`` (xAI Responses API ``web_search``)
openrouter    ``web_search_options``
qwen          ``enable_search`` (DashScope)
============  =================================================================

The same plan is sent either way (``llm``): straight over HTTP, where ``direct`` turns it
into the request litellm would send, or through litellm. ``CallPlan.stream`` reads the
response back (``provider_tools.ProviderStream``) on both paths.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from massgen_proto.endpoints import EndpointPolicy
from massgen_proto.function_tools import function_name
from massgen_proto.json_types import JsonObject
from massgen_proto.messages import BackendSpec
from massgen_proto.providers import (
    BACKENDS,
    BUILTIN_TOOL_KEYS,
    CODE_EXECUTION,
    WEB_SEARCH,
    Backend,
    api_key_envs,
)

from .model_errors import FatalModelError
from .provider_params import provider_params, supported_params
from .provider_tools import ProviderStream, text_tool_messages
from .wire import Message, Tool

__all__ = ["CallPlan", "build_call_params", "endpoint_of", "plan_call"]

_CODE_TOOLS: Mapping[str, Tool] = {
    "openai": {"type": "code_interpreter", "container": {"type": "auto"}},
    # litellm adds the ``code-execution-2025-08-25`` beta header for this tool.
    "claude": {"type": "code_execution_20250825", "name": "code_execution"},
    "gemini": {"codeExecution": {}},
}
_GEMINI_MAJOR = re.compile(r"gemini-(\d+)")


@dataclass(frozen=True)
class CallPlan:
    """One litellm call, and how to read its response (``stream``)."""

    backend_type: str
    params: JsonObject
    """Keyword arguments of ``litellm.acompletion``."""
    offered: tuple[str, ...] = ()
    """Names of the function tools the turn offered."""
    builtin: frozenset[str] = frozenset()
    """The provider's own tools the call turns on (``web_search``, ``code_execution``)."""
    text_tools: tuple[str, ...] | None = None
    """Function tools offered as text (``provider_tools.text_tool_prompt``), or None."""
    dropped: tuple[str, ...] = field(default_factory=tuple)
    """Config parameters not sent: not parameters of this backend type or model."""

    def stream(self) -> ProviderStream:
        """A reader of this call's response chunks."""
        cite = WEB_SEARCH in self.builtin and self.backend_type in ("claude", "gemini")
        return ProviderStream(
            offered=self.offered,
            cite=cite,
            hold_answers=self.backend_type == "gemini",
            text_tools=self.text_tools,
        )


@dataclass
class _Tools:
    """The tools one call offers, after the provider's own tools are added."""

    messages: list[Message]
    """The conversation (with the function tools written in, when offered as text)."""
    tools: list[Tool]
    """Tools sent as tools: the turn's function tools and the provider's own."""
    text_tools: tuple[str, ...] | None = None
    """Function tools offered as text instead, or None."""


def plan_call(
    backend: BackendSpec,
    messages: list[Message],
    tools: list[Tool] | None,
    tool_choice: str | None,
    env: Mapping[str, str] | None = None,
) -> CallPlan:
    """Map a backend spec and a conversation to one litellm call (see the module docstring).

    Raises:
        FatalModelError: unknown backend type, a refused endpoint, no key where one is
            needed (the message names the variables to set), no endpoint.
    """
    env = os.environ if env is None else env
    spec = _backend_type(backend)
    api_key, base_url = _endpoint(backend, spec, env)
    builtin = _builtin_tools(backend, spec)
    params, body, dropped = _config_params(backend, spec, env)
    offered = tuple(name for tool in tools or () if (name := function_name(tool)))
    offer = _offer_tools(backend, builtin, offered, messages, tools, params, body)
    params.update(
        model=_model_prefix(backend, spec, builtin, offer.tools) + backend.model,
        messages=offer.messages,
        stream=True,
        stream_options={"include_usage": True},
        # Retries are the turn's job (backoff within its deadline), not the client's.
        max_retries=0,
        num_retries=0,
    )
    # OpenAI-protocol servers that need no key still get one: the openai client insists.
    params["api_key"] = api_key or "not-needed"
    if base_url:
        params["api_base"] = base_url
    if backend.temperature is not None:
        params["temperature"] = backend.temperature
    if backend.max_tokens is not None:
        params["max_tokens"] = backend.max_tokens
    if body:
        params["extra_body"] = body
    if offer.tools:
        params["tools"] = offer.tools
        if tool_choice and offered and offer.text_tools is None:
            params["tool_choice"] = tool_choice
    return CallPlan(
        backend_type=backend.type,
        params=params,
        offered=offered,
        builtin=builtin,
        text_tools=offer.text_tools,
        dropped=tuple(dropped),
    )


def build_call_params(
    backend: BackendSpec,
    messages: list[Message],
    tools: list[Tool] | None,
    tool_choice: str | None,
    env: Mapping[str, str] | None = None,
) -> JsonObject:
    """The ``litellm.acompletion`` keyword arguments of ``plan_call``.

    Raises:
        FatalModelError: as ``plan_call``.
    """
    return plan_call(backend, messages, tools, tool_choice, env).params


def endpoint_of(
    backend: BackendSpec, env: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """``(key, base URL)`` the backend's calls use (a file or vector-store call too).

    Raises:
        FatalModelError: as ``plan_call``.
    """
    env = os.environ if env is None else env
    return _endpoint(backend, _backend_type(backend), env)


def _backend_type(backend: BackendSpec) -> Backend:
    """The backend's type from ``BACKENDS``.

    Raises:
        FatalModelError: an unknown type (the message lists the known ones).
    """
    spec = BACKENDS.get(backend.type)
    if spec is None:
        raise FatalModelError(
            f"unknown backend type {backend.type!r}; known types: {', '.join(sorted(BACKENDS))}"
        )
    return spec


def _endpoint(
    backend: BackendSpec, spec: Backend, env: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """``(key, base URL)`` of the backend's calls; either may be None where none is needed.

    Raises:
        FatalModelError: the endpoint is refused by the deployment's policy, no key where
            one is needed, no endpoint where the type has no default.
    """
    # The operator's endpoints only, where a deployment says so: the organisation's key
    # must never travel to a host a tenant chose.
    policy = EndpointPolicy.from_env(env)
    refused = policy.problem(backend.type, backend.base_url, bool(backend.api_key))
    if refused:
        raise FatalModelError(f"backend.base_url refused: {refused}")
    api_key = _api_key(backend, env)
    base_url = backend.base_url or spec.default_base_url
    if backend.type == "azure_openai":
        base_url = base_url or env.get("AZURE_OPENAI_ENDPOINT") or None
        if not base_url:
            raise FatalModelError(
                "backend type 'azure_openai' needs its endpoint: set AZURE_OPENAI_ENDPOINT "
                "or give backend.base_url"
            )
    if spec.needs_base_url and not base_url:
        raise FatalModelError(f"backend type {backend.type!r} needs backend.base_url")
    return api_key, base_url


def _api_key(backend: BackendSpec, env: Mapping[str, str]) -> str | None:
    """The config's key, else the first variable set of those the backend reads.

    Raises:
        FatalModelError: the backend needs a key and none is set (names the variables).
    """
    if backend.api_key:
        return backend.api_key
    names = api_key_envs(backend.type, backend.base_url)
    for name in names:
        if env.get(name):
            return env[name]
    if names:
        where = " or ".join(names)
        host = "" if BACKENDS[backend.type].api_key_env else f" (for {backend.base_url})"
        raise FatalModelError(
            f"no API key for backend type {backend.type!r}{host}: set {where} "
            "or give backend.api_key in the config"
        )
    return None


def _config_params(
    backend: BackendSpec, spec: Backend, env: Mapping[str, str]
) -> tuple[JsonObject, JsonObject, list[str]]:
    """``provider_params`` of the backend, with Azure's API version from the environment
    when the config has none."""
    provider = spec.litellm_prefix.rstrip("/")
    params, body, dropped = provider_params(
        backend, lambda: supported_params(backend.model, provider)
    )
    if backend.type == "azure_openai" and "api_version" not in params:
        version = env.get("AZURE_OPENAI_API_VERSION")
        if version:
            params["api_version"] = version
    return params, body, dropped


def _builtin_tools(backend: BackendSpec, spec: Backend) -> frozenset[str]:
    """The provider's own tools the config turns on (``web_search``, ``code_execution``).

    Raises:
        FatalModelError: the backend type has no such tool.
    """
    builtin = frozenset(
        tool for key, tool in BUILTIN_TOOL_KEYS.items() if backend.params.get(key) is True
    )
    unable = sorted(builtin - spec.builtin_tools)
    if unable:
        raise FatalModelError(
            f"backend type {backend.type!r} cannot use the provider's {', '.join(unable)}"
        )
    return builtin


def _model_prefix(
    backend: BackendSpec, spec: Backend, builtin: frozenset[str], tools: list[Tool]
) -> str:
    """litellm's provider prefix of the model name (OpenAI's Responses API where needed)."""
    reasoning = backend.params.get("reasoning")
    summary = isinstance(reasoning, Mapping) and reasoning.get("summary") is not None
    # The worker's file search of the agent's uploads (``file_search``) is a tool too.
    searches = any(tool.get("type") == "file_search" for tool in tools)
    if backend.type == "openai" and (builtin or summary or searches):
        # OpenAI's own tools and reasoning summaries exist in its Responses API only.
        return "openai/responses/"
    return spec.litellm_prefix


def _offer_tools(
    backend: BackendSpec,
    builtin: frozenset[str],
    offered: tuple[str, ...],
    messages: list[Message],
    tools: list[Tool] | None,
    params: JsonObject,
    body: JsonObject,
) -> _Tools:
    """The turn's function tools with the provider's own added (the table of the module
    docstring); the web search options go into ``params`` or ``body`` in place."""
    offer = _Tools(messages=messages, tools=list(tools or ()))
    if WEB_SEARCH in builtin:
        if backend.type == "openai":
            offer.tools.append({"type": "web_search"})
        elif backend.type == "qwen":
            body["enable_search"] = True
        elif backend.type == "gemini" and offered and not _gemini_3(backend.model):
            # Gemini before 3 answers a request with both Google Search and function
            # declarations with an error (litellm drops the search): offer them as text.
            offer = _Tools(
                messages=text_tool_messages(messages, offer.tools), tools=[], text_tools=offered
            )
            params["web_search_options"] = {}
        else:
            params["web_search_options"] = {}
            if backend.type == "gemini" and offered:
                params["include_server_side_tool_invocations"] = True
    if CODE_EXECUTION in builtin:
        offer.tools.append(dict(_CODE_TOOLS[backend.type]))
    return offer


def _gemini_3(model: str) -> bool:
    """True for Gemini 3 and later, which combine Google Search with function tools."""
    match = _GEMINI_MAJOR.search(model)
    return match is not None and int(match.group(1)) >= 3

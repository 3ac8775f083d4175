"""The one seam between a turn and the model providers.

``turn.py`` depends on the ``Model`` protocol only. ``LiteLLMModel`` is its
implementation: it plans every call as one litellm call (``plan_call``), then sends it
either straight over HTTP or through litellm. This module and ``openai_http`` are the
only ones that reach a provider, and this is the only module that imports litellm,
lazily: ``import litellm`` takes seconds, so a worker whose calls all go direct never
pays it.

Which path a call takes (``direct.litellm_reason``; the rule in full is in ``direct``):

- **direct** (``openai_http``: httpx, one POST ``{base}/chat/completions`` with
  ``stream: true``): the backend type is one whose litellm adapter sends plain OpenAI
  chat completions (``direct.DIRECT_TYPES``: chatcompletion, local, sglang, vllm,
  lmstudio, zai, poe, openai, nebius, qwen) AND nothing in the call is something only
  litellm does: no provider built-in tools (web search, code execution), no Responses
  API (OpenAI reasoning summaries), no OpenAI reasoning model name (``gpt-5``, ``o3``:
  litellm renames ``max_tokens`` and drops ``temperature``), no parameter litellm maps
  for that provider, no message content parts or ``cache_control``, no tool schema
  litellm would rewrite. The request (URL, JSON body, auth and OpenAI headers) is what
  litellm would send, tested against litellm itself, so the key, endpoint policy and
  parameters are exactly ``build_call_params``'s.
- **litellm** for everything else: claude, gemini, grok, azure_openai, groq, together,
  fireworks, cerebras, openrouter, moonshot/kimi, and the calls above that need it.
  ``MASSGEN_MODEL_TRANSPORT=litellm`` sends every call through litellm.

Planning needs litellm only for config parameters whose fate litellm's per-model tables
decide (``top_p``, ``seed``, ``reasoning.effort``...: sent when litellm lists them for
the model); a call with such a parameter loads litellm off the event loop first, and
may still be sent direct.

``plan_call`` maps a turn's backend to one litellm call: the key (from the config, the
backend's variables, or for ``chatcompletion`` the variable its ``base_url`` host
implies), the endpoint (Azure's from ``AZURE_OPENAI_ENDPOINT``), the config's provider
parameters (only those litellm lists for the model, or the backend type's own ones, see
``providers.param_problem``: no other key is ever sent), and the provider's own tools:

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

``CallPlan.stream`` reads the response back (``provider_tools.ProviderStream``), on
both paths.

Provider errors come out as one of two classes, each carrying the provider's message:
``RetryableModelError`` (rate limits, 5xx, timeouts, connection errors) and
``FatalModelError`` (auth, bad request, missing key, unknown backend type).

Start-up: ``apreload(providers)`` readies the direct path (httpx, TLS context) and
imports litellm in a thread only when a provider served needs it
(``needs_litellm``); a turn that needs litellm later loads it then, off the event loop.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from massgen_proto.endpoints import EndpointPolicy
from massgen_proto.messages import BackendSpec
from massgen_proto.providers import (
    BACKENDS,
    BUILTIN_TOOL_KEYS,
    CODE_EXECUTION,
    WEB_SEARCH,
    api_key_envs,
)

from .direct import DIRECT_TYPES, litellm_reason, wire_request
from .provider_tools import ProviderStream, text_tool_messages
from .stream import StreamDelta

__all__ = [
    "CallPlan",
    "FatalModelError",
    "LiteLLMModel",
    "Model",
    "ModelError",
    "RetryableModelError",
    "TRANSPORT_ENV",
    "apreload",
    "build_call_params",
    "classify_error",
    "error_for_status",
    "needs_litellm",
    "plan_call",
    "preload",
]

log = structlog.get_logger("massgen_worker.llm")

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
TRANSPORT_ENV = "MASSGEN_MODEL_TRANSPORT"
"""``litellm``: send every call through litellm (default ``auto``: see the module docstring)."""

_preload_lock = threading.Lock()
_litellm: Any = None
_warm_task: Any = None
_direct_warm_task: Any = None


class ModelError(Exception):
    """A model call failed; ``message`` is the provider's own words."""

    retryable: bool = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class RetryableModelError(ModelError):
    """Worth another try: rate limit, server error, timeout, connection failure."""

    retryable = True


class FatalModelError(ModelError):
    """Retrying cannot help: bad key, missing key, bad request, unknown backend."""


class Model(Protocol):
    """A chat model that streams one response.

    ``stream`` yields the response's deltas in order and raises ``ModelError``
    (retryable or fatal) when the provider fails, before or during the stream.
    """

    def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        tool_choice: str | None,
    ) -> AsyncIterator[StreamDelta]: ...


def preload() -> Any:
    """Import and configure litellm once; safe to call from any thread, any number of times."""
    global _litellm
    if _litellm is not None:
        return _litellm
    with _preload_lock:
        if _litellm is None:
            # Use the tables shipped with the wheel instead of fetching them from GitHub
            # (at import, and at the first Anthropic call): workers may have no internet
            # access beyond their providers.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
            try:
                import litellm
            except ImportError as error:  # pragma: no cover - litellm is a dependency
                raise ImportError(
                    "the agent worker needs litellm: uv sync --all-packages"
                ) from error
            litellm.suppress_debug_info = True
            litellm.drop_params = True
            litellm.telemetry = False
            _litellm = litellm
    return _litellm


def needs_litellm(providers: Iterable[str], env: Mapping[str, str] | None = None) -> bool:
    """Whether a worker serving ``providers`` will certainly call litellm.

    True when a provider serves a backend type that always goes through litellm (not in
    ``direct.DIRECT_TYPES``: anthropic, gemini, xai, azure, groq, ...), or when
    ``MASSGEN_MODEL_TRANSPORT=litellm``. Provider names that are no ``BACKENDS``
    provider (a test's or a deployment's own pool name) decide nothing: False.
    """
    env = os.environ if env is None else env
    names = set(providers)
    if not names:
        return False
    if env.get(TRANSPORT_ENV) == "litellm":
        return True
    return any(
        spec.provider in names and kind not in DIRECT_TYPES for kind, spec in BACKENDS.items()
    )


async def apreload(providers: Iterable[str] | None = None) -> Any:
    """Ready this process and event loop for turns, without blocking the loop.

    Always readies the direct path: imports httpx, builds the TLS context and reads the
    price map, in a thread (~0.2 s), then makes one call to a throwaway loopback server on
    this loop. litellm is imported (in a thread, with the cyclic GC paused) and
    warmed up on this loop only when it is already loaded, every call goes through it
    (``MASSGEN_MODEL_TRANSPORT=litellm``), or ``providers`` is given and
    ``needs_litellm(providers)``; otherwise it is left to the first call that needs it.

    Args:
        providers: the providers this worker serves; None: not known here.

    Returns:
        The litellm module when it is loaded, else None.
    """
    import asyncio

    global _direct_warm_task
    await asyncio.to_thread(_prepare_direct)
    loop = asyncio.get_running_loop()
    if _direct_warm_task is None or _direct_warm_task.get_loop() is not loop:
        _direct_warm_task = asyncio.ensure_future(_warm_up_direct())
    try:
        async with asyncio.timeout(5):
            await asyncio.shield(_direct_warm_task)
    except Exception:  # noqa: BLE001 - warming up is an optimisation, never a failure
        pass
    if (
        _litellm is not None
        or os.environ.get(TRANSPORT_ENV) == "litellm"
        or (providers is not None and needs_litellm(providers))
    ):
        return await _litellm_ready()
    return None


def _prepare_direct() -> None:
    from . import openai_http, price_map

    openai_http.prepare()
    price_map.load()  # litellm's price map, for ``pricing`` (~30 ms of JSON)


def _preload_paused() -> Any:
    """``preload`` with the cyclic GC paused (see ``massgen_kit.runtime.loading_code``)."""
    if _litellm is not None:
        return _litellm
    from massgen_kit.runtime import loading_code

    with loading_code():
        return preload()


async def _litellm_ready() -> Any:
    """litellm imported off the event loop, then one warm-up call on this loop.

    The import runs in a thread. litellm's async path still imports ~0.5 s of modules
    on its first call (the openai client's resources, the tokenizer for usage), so a
    streamed call with a tool to a throwaway local server pays that here instead of in
    the provider call. Clients are made on this loop.
    """
    global _warm_task
    import asyncio

    litellm = _litellm if _litellm is not None else await asyncio.to_thread(_preload_paused)
    if _warm_task is None or _warm_task.get_loop() is not asyncio.get_running_loop():
        # One warm-up per event loop; concurrent callers wait for the same one.
        _warm_task = asyncio.ensure_future(_warm_up_async(litellm))
    if not _warm_task.done():
        # Not ``wait_for``: on Python 3.11 it can swallow a cancellation that arrives
        # as the awaited future completes, and a cancelled turn would run on.
        try:
            async with asyncio.timeout(10):
                await asyncio.shield(_warm_task)
        except Exception:  # noqa: BLE001 - warming up is an optimisation, never a failure
            pass
    return litellm


_WARM_UP_SSE = (
    b'data: {"id":"w","object":"chat.completion.chunk","created":0,"model":"warm-up",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},"finish_reason":null}]}'
    b"\n\n"
    b'data: {"id":"w","object":"chat.completion.chunk","created":0,"model":"warm-up",'
    b'"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n'
    b"data: [DONE]\n\n"
)


@contextlib.asynccontextmanager
async def _warm_up_endpoint() -> AsyncIterator[str]:
    """A throwaway OpenAI-protocol server on loopback that streams ``_WARM_UP_SSE`` to
    every request; yields its base URL."""
    import asyncio

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Connection: close\r\n\r\n" + _WARM_UP_SSE
            )
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()
        await server.wait_closed()


async def _warm_up_async(litellm: Any) -> None:
    async with _warm_up_endpoint() as base_url:
        response = await litellm.acompletion(
            model="openai/warm-up",
            messages=[{"role": "user", "content": "warm-up"}],
            tools=[{"type": "function", "function": {"name": "noop", "parameters": {}}}],
            stream=True,
            stream_options={"include_usage": True},
            api_key="warm-up",
            api_base=base_url,
            max_retries=0,
        )
        async for _ in response:
            pass


async def _warm_up_direct() -> None:
    """One streamed call through ``openai_http`` on this loop: the first request's lazy
    imports and the loop's client happen here, not in a turn."""
    from . import openai_http

    async with _warm_up_endpoint() as base_url:
        request = wire_request(
            "chatcompletion",
            {"model": "openai/warm-up", "messages": [{"role": "user", "content": "warm-up"}],
             "stream": True, "stream_options": {"include_usage": True}, "api_key": "warm-up",
             "api_base": base_url},
            {},
        )  # fmt: skip
        async for _ in openai_http.stream_chunks(request):
            pass


_VERBOSITY_TYPES = frozenset({"openai", "azure_openai"})
# Backends whose litellm adapter takes a provider's own parameters (top_k, thinking,
# safety_settings) as keyword arguments; OpenAI-protocol servers get them in the body.
_KWARG_TYPES = frozenset({"claude", "gemini"})
_CODE_TOOLS: Mapping[str, dict[str, Any]] = {
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
    params: dict[str, Any]
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


@functools.lru_cache(maxsize=512)
def _supported_params(model: str, provider: str) -> frozenset[str]:
    """The OpenAI-style parameters litellm takes for ``model`` of ``provider``."""
    litellm = preload()
    try:
        names = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider)
    except Exception:  # noqa: BLE001 - a model litellm cannot place: send no OpenAI-style
        names = None  # parameter beyond the typed keys rather than one it may refuse
    return frozenset(names or ())


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


# The names of ``litellm.OPENAI_CHAT_COMPLETION_PARAMS`` that a backend type can be given
# (``Backend.params``, after the renames below); a test keeps it equal to litellm's.
_OPENAI_PARAMS = frozenset(
    {"api_version", "frequency_penalty", "logit_bias", "logprobs", "max_completion_tokens",
     "parallel_tool_calls", "presence_penalty", "reasoning_effort", "seed", "service_tier",
     "stop", "thinking", "top_logprobs", "top_p", "user", "verbosity"}
)  # fmt: skip


def _translated(backend_type: str, key: str, value: Any) -> tuple[str, Any] | None:
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


def _needs_tables(backend: BackendSpec) -> bool:
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
        if translated[0] in _OPENAI_PARAMS or backend.type not in DIRECT_TYPES | _KWARG_TYPES:
            return True
    return False


def _provider_params(
    backend: BackendSpec, supported: Callable[[], frozenset[str]]
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """``(keyword arguments, extra body, dropped keys)`` from the config's parameters.

    ``supported()`` (litellm's parameters of the model) is only asked about a parameter
    whose fate it decides (``_needs_tables``): an OpenAI parameter, or a provider's own
    one for a type litellm may list it for (fireworks: ``top_k``). Claude's and Gemini's
    own parameters are keyword arguments either way; a direct type's are never among
    litellm's listed ones (a test checks it), so they go to the body without asking.
    """
    spec = BACKENDS[backend.type]
    out: dict[str, Any] = {}
    body: dict[str, Any] = {}
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
            out.setdefault("extra_headers", {})["anthropic-beta"] = ",".join(map(str, betas))
            continue
        elif key == "api_version":
            out[key] = value
            continue
        if key not in _OPENAI_PARAMS and backend.type in _KWARG_TYPES:
            out[key] = value
        elif key not in _OPENAI_PARAMS and backend.type in DIRECT_TYPES:
            body[key] = value  # a server's own sampling knob (top_k, min_p, ...)
        elif key in supported():
            out[key] = value
        elif key in _OPENAI_PARAMS:
            dropped.append(key)  # an OpenAI parameter this model does not take (gpt-5: top_p)
        else:
            body[key] = value
    return out, body, dropped


def plan_call(
    backend: BackendSpec,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    tool_choice: str | None,
    env: Mapping[str, str] | None = None,
) -> CallPlan:
    """Map a backend spec and a conversation to one litellm call (see the module docstring).

    Raises:
        FatalModelError: unknown backend type, a refused endpoint, no key where one is
            needed (the message names the variables to set), no endpoint.
    """
    env = os.environ if env is None else env
    spec = BACKENDS.get(backend.type)
    if spec is None:
        raise FatalModelError(
            f"unknown backend type {backend.type!r}; known types: {', '.join(sorted(BACKENDS))}"
        )
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

    builtin = frozenset(
        tool for key, tool in BUILTIN_TOOL_KEYS.items() if backend.params.get(key) is True
    )
    unable = sorted(builtin - spec.builtin_tools)
    if unable:
        raise FatalModelError(
            f"backend type {backend.type!r} cannot use the provider's {', '.join(unable)}"
        )
    provider = spec.litellm_prefix.rstrip("/")
    reasoning = backend.params.get("reasoning")
    summary = isinstance(reasoning, Mapping) and reasoning.get("summary") is not None
    prefix = spec.litellm_prefix
    if backend.type == "openai" and (builtin or summary):
        # OpenAI's own tools and reasoning summaries exist in its Responses API only.
        prefix = "openai/responses/"
    params, body, dropped = _provider_params(
        backend, lambda: _supported_params(backend.model, provider)
    )
    if backend.type == "azure_openai" and "api_version" not in params:
        version = env.get("AZURE_OPENAI_API_VERSION")
        if version:
            params["api_version"] = version

    offered = tuple(
        name for tool in tools or () if (name := (tool.get("function") or {}).get("name"))
    )
    call_tools = list(tools or ())
    text_tools = None
    if WEB_SEARCH in builtin:
        if backend.type == "openai":
            call_tools.append({"type": "web_search"})
        elif backend.type == "qwen":
            body["enable_search"] = True
        elif backend.type == "gemini" and offered and not _gemini_3(backend.model):
            # Gemini before 3 answers a request with both Google Search and function
            # declarations with an error (litellm drops the search): offer them as text.
            messages = text_tool_messages(messages, call_tools)
            call_tools, text_tools = [], offered
            params["web_search_options"] = {}
        else:
            params["web_search_options"] = {}
            if backend.type == "gemini" and offered:
                params["include_server_side_tool_invocations"] = True
    if CODE_EXECUTION in builtin:
        call_tools.append(dict(_CODE_TOOLS[backend.type]))

    params.update(
        model=prefix + backend.model,
        messages=messages,
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
    if call_tools:
        params["tools"] = call_tools
        if tool_choice and offered and text_tools is None:
            params["tool_choice"] = tool_choice
    return CallPlan(
        backend_type=backend.type,
        params=params,
        offered=offered,
        builtin=builtin,
        text_tools=text_tools,
        dropped=tuple(dropped),
    )


def _gemini_3(model: str) -> bool:
    """True for Gemini 3 and later, which combine Google Search with function tools."""
    match = _GEMINI_MAJOR.search(model)
    return bool(match) and int(match.group(1)) >= 3


def build_call_params(
    backend: BackendSpec,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    tool_choice: str | None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``litellm.acompletion`` keyword arguments of ``plan_call``.

    Raises:
        FatalModelError: as ``plan_call``.
    """
    return plan_call(backend, messages, tools, tool_choice, env).params


def error_for_status(message: str, status: int | None) -> ModelError:
    """The ModelError of an HTTP failure: retryable for 408/409/425/429, 5xx and no status
    (no response: connection, timeout); fatal for other statuses."""
    if status is None or status in _RETRYABLE_STATUS or status >= 500:
        return RetryableModelError(message, status)
    return FatalModelError(message, status)


def classify_error(error: BaseException) -> ModelError:
    """Map a provider/client exception to a retryable or fatal ModelError."""
    if isinstance(error, ModelError):
        return error
    message = str(getattr(error, "message", None) or error) or type(error).__name__
    status = getattr(error, "status_code", None)
    status = status if isinstance(status, int) else None
    name = type(error).__name__
    # An openai error exists only once litellm has imported openai; importing it here
    # just to ask would cost a direct-path worker half a second.
    openai = sys.modules.get("openai")
    transient = openai is not None and isinstance(
        error, openai.APITimeoutError | openai.APIConnectionError
    )
    transient = (
        transient
        or isinstance(error, TimeoutError | ConnectionError)
        or name in {"Timeout", "APIConnectionError", "ServiceUnavailableError"}
        or (status is not None and (status in _RETRYABLE_STATUS or status >= 500))
    )
    if transient:
        return RetryableModelError(message, status)
    return FatalModelError(message, status)


class LiteLLMModel:
    """A ``Model`` reaching any backend type of ``providers.BACKENDS``: straight over HTTP
    when the call allows (``direct.litellm_reason``), else through litellm.

    Args:
        backend: the agent's backend.
        transport: ``auto`` (the rule of the module docstring) or ``litellm`` (every
            call through litellm); None: ``$MASSGEN_MODEL_TRANSPORT``, else ``auto``.
    """

    def __init__(self, backend: BackendSpec, *, transport: str | None = None) -> None:
        self.backend = backend
        transport = transport or os.environ.get(TRANSPORT_ENV) or "auto"
        if transport not in ("auto", "litellm"):
            raise ValueError(f"transport must be 'auto' or 'litellm', not {transport!r}")
        self.transport = transport
        self.last_path: str | None = None
        """``direct`` or ``litellm``: how the last call was sent (logs, tests)."""

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        tool_choice: str | None,
    ) -> AsyncIterator[StreamDelta]:
        """Stream one response (see ``Model.stream``)."""
        backend = self.backend
        litellm_only = self.transport == "litellm" or backend.type not in DIRECT_TYPES
        if litellm_only or (_litellm is None and _needs_tables(backend)):
            await _litellm_ready()  # planning reads litellm's tables: load them off the loop
        plan = plan_call(backend, messages, tools, tool_choice)
        if plan.dropped:
            log.warning(
                "provider_params_not_sent",
                backend=backend.type,
                model=backend.model,
                keys=list(plan.dropped),
            )
        reason = (
            "transport"
            if litellm_only
            else litellm_reason(plan.backend_type, plan.params, plan.builtin)
        )
        self.last_path = "direct" if reason is None else "litellm"
        log.debug("model_call", backend=backend.type, transport=self.last_path, why=reason)
        deltas = _stream_direct(plan) if reason is None else _stream_litellm(plan)
        try:
            async for delta in deltas:
                yield delta
        finally:
            await deltas.aclose()  # the HTTP response, when the reader stops early


async def _stream_direct(plan: CallPlan) -> AsyncIterator[StreamDelta]:
    """One call straight over HTTP (``openai_http``)."""
    from . import openai_http

    request = wire_request(plan.backend_type, plan.params, os.environ)
    reader = plan.stream()
    chunks = openai_http.stream_chunks(request)
    try:
        async for chunk in chunks:
            for delta in reader.feed(chunk):
                yield delta
    except Exception as error:  # CancelledError is not an Exception: it propagates.
        raise classify_error(error) from error
    finally:
        await chunks.aclose()
    for delta in reader.finish():
        yield delta


async def _stream_litellm(plan: CallPlan) -> AsyncIterator[StreamDelta]:
    """One call through ``litellm.acompletion``."""
    litellm = await _litellm_ready()
    reader = plan.stream()
    try:
        response = await litellm.acompletion(**plan.params)
        async for chunk in response:
            for delta in reader.feed(chunk):
                yield delta
    except Exception as error:  # CancelledError is not an Exception: it propagates.
        raise classify_error(error) from error
    for delta in reader.finish():
        yield delta

"""The one seam between a turn and the model providers.

``turn.py`` depends on the ``Model`` protocol only. ``LiteLLMModel`` is the single
implementation backed by litellm, and this is the only module that imports litellm
(lazily: ``import litellm`` takes seconds, so ``preload()`` lets a launcher pay that
early, in the background).

Provider errors come out as one of two classes, each carrying the provider's message:
``RetryableModelError`` (rate limits, 5xx, timeouts, connection errors) and
``FatalModelError`` (auth, bad request, missing key, unknown backend type).
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from massgen_proto.endpoints import EndpointPolicy
from massgen_proto.messages import BackendSpec
from massgen_proto.providers import BACKENDS

from .stream import StreamDelta, parse_chunk

__all__ = [
    "FatalModelError",
    "LiteLLMModel",
    "Model",
    "ModelError",
    "RetryableModelError",
    "build_call_params",
    "apreload",
    "classify_error",
    "preload",
]

# MassGen config keys that are not provider parameters (or that litellm cannot take).
_DROPPED_PARAMS = frozenset(
    {
        "text",
        "type",
        "model",
        "base_url",
        "api_key",
        "cwd",
        "mcp_servers",
        "allowed_tools",
        "exclude_tools",
        "enable_web_search",
        "enable_code_interpreter",
        "enable_mcp_command_line",
        "context_paths",
        "stream",
        "stream_options",
        "messages",
        "tools",
        "tool_choice",
    }
)
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})

_preload_lock = threading.Lock()
_litellm: Any = None
_warm_task: Any = None


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
            # Use the cost map shipped with the wheel instead of fetching it at import.
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
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


async def apreload() -> Any:
    """``preload`` off the event loop, then one warm-up call on this loop.

    The import runs in a thread. litellm's async path still imports ~0.5 s of modules
    on its first call (the openai client's resources, the tokenizer for usage), so a
    streamed call with a tool to a throwaway local server pays that here (at worker
    start) instead of in the first turn. Clients are made on this loop.
    """
    global _warm_task
    import asyncio

    litellm = _litellm if _litellm is not None else await asyncio.to_thread(preload)
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


async def _warm_up_async(litellm: Any) -> None:
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
        response = await litellm.acompletion(
            model="openai/warm-up",
            messages=[{"role": "user", "content": "warm-up"}],
            tools=[{"type": "function", "function": {"name": "noop", "parameters": {}}}],
            stream=True,
            stream_options={"include_usage": True},
            api_key="warm-up",
            api_base=f"http://127.0.0.1:{port}/v1",
            max_retries=0,
        )
        async for _ in response:
            pass
    finally:
        server.close()
        await server.wait_closed()


def build_call_params(
    backend: BackendSpec,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    tool_choice: str | None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Map a backend spec and a conversation to ``litellm.acompletion`` keyword arguments.

    Raises:
        FatalModelError: unknown backend type, or no API key where one is needed
            (the message names the environment variable to set).
    """
    env = os.environ if env is None else env
    spec = BACKENDS.get(backend.type)
    if spec is None:
        raise FatalModelError(
            f"unknown backend type {backend.type!r}; known types: {', '.join(sorted(BACKENDS))}"
        )
    params: dict[str, Any] = {}
    for key, value in backend.params.items():
        if key in _DROPPED_PARAMS or value is None:
            continue
        if key == "reasoning" and isinstance(value, Mapping):
            if value.get("effort") is not None:
                params["reasoning_effort"] = value["effort"]
            continue
        params[key] = value

    # The operator's endpoints only, where a deployment says so: the organisation's key
    # must never travel to a host a tenant chose.
    policy = EndpointPolicy.from_env(env)
    refused = policy.problem(backend.type, backend.base_url, bool(backend.api_key))
    if refused:
        raise FatalModelError(f"backend.base_url refused: {refused}")
    api_key = backend.api_key
    if not api_key and spec.api_key_env:
        api_key = env.get(spec.api_key_env) or None
        if not api_key:
            raise FatalModelError(
                f"no API key for backend type {backend.type!r}: set {spec.api_key_env} "
                "or give backend.api_key in the config"
            )
    base_url = backend.base_url or spec.default_base_url
    if spec.needs_base_url and not base_url:
        raise FatalModelError(f"backend type {backend.type!r} needs backend.base_url")

    params.update(
        model=spec.litellm_prefix + backend.model,
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
    if tools:
        params["tools"] = tools
        if tool_choice:
            params["tool_choice"] = tool_choice
    return params


def classify_error(error: BaseException) -> ModelError:
    """Map a provider/client exception to a retryable or fatal ModelError."""
    if isinstance(error, ModelError):
        return error
    message = str(getattr(error, "message", None) or error) or type(error).__name__
    status = getattr(error, "status_code", None)
    status = status if isinstance(status, int) else None
    name = type(error).__name__
    try:
        import openai

        transient = isinstance(error, openai.APITimeoutError | openai.APIConnectionError)
    except ImportError:  # pragma: no cover - openai comes with litellm
        transient = False
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
    """A ``Model`` reaching any backend type of ``providers.BACKENDS`` through litellm."""

    def __init__(self, backend: BackendSpec) -> None:
        self.backend = backend

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        tool_choice: str | None,
    ) -> AsyncIterator[StreamDelta]:
        """Stream one response (see ``Model.stream``)."""
        params = build_call_params(self.backend, messages, tools, tool_choice)
        litellm = await apreload()
        try:
            response = await litellm.acompletion(**params)
            async for chunk in response:
                yield parse_chunk(chunk)
        except Exception as error:  # CancelledError is not an Exception: it propagates.
            raise classify_error(error) from error

"""Stream one OpenAI chat completion over HTTP (httpx), without litellm.

``stream_chunks(request)`` POSTs a ``direct.WireRequest`` and yields the decoded
``chat.completion.chunk`` objects of its server-sent events, as dicts, in the order
litellm hands them on: a chunk carrying both a ``finish_reason`` and ``usage`` comes out
as two (the finish first, so a turn acting on a finished tool call still reads the usage
after it), and a stream that ends with ``data: [DONE]`` but never said why ends with a
``stop``.

Failures come out as the worker's model errors, classified like ``model_errors.classify_error``
classifies litellm's: HTTP 408/409/425/429 and 5xx, timeouts and connection failures
(refused, reset) are ``RetryableModelError``, other 4xx ``FatalModelError``, with the
provider's own message (``error.message`` of its JSON body) and the HTTP status (None
without a response). An error event after the 200 (vLLM, SGLang) is retryable with
status 500, as litellm reports it. A body that ends before both ``[DONE]`` and a
``finish_reason`` (the connection dropped mid-stream) is retryable with no status; over
a close-delimited body litellm cannot tell, and makes up a ``stop``.

Not copied from litellm: when a server sends no ``usage`` despite ``include_usage``,
litellm estimates the tokens with a tokenizer; here the response has no usage.

One ``httpx.AsyncClient`` per event loop keeps connections alive between calls; its TLS
context is built once per process (``prepare``, run in a thread at worker start, so
the certificate store is not read on the first turn). The environment is honoured like
litellm does: ``HTTPS_PROXY``/``NO_PROXY`` (httpx), ``SSL_VERIFY`` (false or a CA bundle
path), ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING

import httpx
from massgen_proto.json_types import JsonObject, JsonValue, items_of, object_of

from .direct import WireRequest
from .model_errors import ModelError, RetryableModelError, error_for_status

if TYPE_CHECKING:
    import ssl

__all__ = ["aclose", "prepare", "stream_chunks"]

TIMEOUT = httpx.Timeout(600.0, connect=30.0)
"""litellm's default request timeout (600 s) for reads; a turn's own deadline is shorter."""
_MAX_ERROR_CHARS = 2000

_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def prepare() -> None:
    """Import what the first request would (httpcore, anyio: ~0.1 s) and build the TLS
    context (reads the CA bundle: ~25 ms); safe from any thread."""
    import anyio._backends._asyncio  # noqa: F401 - httpx's transport loads it per request
    import httpcore  # noqa: F401

    _verify()


def _verify() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        with _ssl_lock:
            if _ssl_context is None:
                _ssl_context = _build_ssl_context(os.environ)
    return _ssl_context


def _build_ssl_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """litellm's ``SSL_VERIFY`` rule: a CA bundle path, a false value, or verify."""
    setting = env.get("SSL_VERIFY", "")
    if setting and os.path.exists(setting):
        import ssl

        return ssl.create_default_context(cafile=setting)
    if setting.strip().lower() in {"false", "0", "no", "off", "f", "n"}:
        return httpx.create_ssl_context(verify=False)
    return httpx.create_ssl_context(verify=True, trust_env=True)


def _client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(timeout=TIMEOUT, verify=_verify(), trust_env=True)
        _clients[loop] = client
    return client


async def aclose() -> None:
    """Close this event loop's client (its kept-alive connections)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


async def stream_chunks(request: WireRequest) -> AsyncGenerator[JsonObject, None]:
    """POST ``request`` and yield its stream chunks (see the module docstring).

    Raises:
        ModelError: retryable or fatal, with the provider's message and status.
    """
    client = _client()
    try:
        async with client.stream(
            "POST", request.url, headers=request.headers, json=request.body
        ) as response:
            if response.status_code >= 400:
                body = await response.aread()
                raise error_for_status(_error_message(body, response), response.status_code)
            data: list[str] = []
            finished = False
            async for line in response.aiter_lines():
                if line:
                    if line.startswith("data:"):
                        data.append(line[6:] if line.startswith("data: ") else line[5:])
                    continue  # ``event:``, ``id:``, ``retry:`` and ``:`` comments
                if not data:
                    continue
                payload = "\n".join(data)
                data.clear()
                if payload == "[DONE]":
                    if not finished:
                        yield _STOP
                    return
                for chunk in _split(_chunk(payload)):
                    finished = finished or _finish_reason(chunk) is not None
                    yield chunk
            if data:  # the last event lacked its blank line, or was cut off
                payload = "\n".join(data)
                if payload == "[DONE]":
                    finished = True
                else:
                    try:
                        chunks = _split(_chunk(payload))
                    except RetryableModelError:
                        chunks = []
                    for chunk in chunks:
                        finished = finished or _finish_reason(chunk) is not None
                        yield chunk
            if not finished:
                raise RetryableModelError(
                    "connection closed before the response was complete (no finish_reason)"
                )
    except ModelError:
        raise
    except httpx.TimeoutException as error:
        raise RetryableModelError(f"request timed out: {error or type(error).__name__}") from error
    except httpx.TransportError as error:
        # Connection refused / reset / closed mid-body: retryable, like litellm's
        # APIConnectionError.
        raise RetryableModelError(f"connection error: {error or type(error).__name__}") from error


_STOP: JsonObject = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def _finish_reason(chunk: Mapping[str, JsonValue]) -> JsonValue:
    choices = items_of(chunk.get("choices"))
    return object_of(choices[0]).get("finish_reason") if choices else None


def _split(chunk: JsonObject) -> list[JsonObject]:
    """``[chunk]``, or the chunk without its usage and then the usage alone when it also
    ends the response (litellm's order)."""
    if chunk.get("usage") is None or _finish_reason(chunk) is None:
        return [chunk]
    rest = dict(chunk)
    usage = rest.pop("usage")
    return [rest, {"choices": [], "usage": usage}]


def _chunk(payload: str) -> JsonObject:
    try:
        chunk = json.loads(payload)
    except ValueError as error:
        raise RetryableModelError(f"malformed stream event: {payload[:200]!r}") from error
    if not isinstance(chunk, dict):
        raise RetryableModelError(f"malformed stream event: {payload[:200]!r}")
    failure = chunk.get("error")
    if failure:
        # vLLM and SGLang report a failure after the 200 as an event. litellm turns it
        # into a mid-stream connection error (status 500, retried), whatever its code.
        message = failure.get("message") if isinstance(failure, dict) else None
        raise RetryableModelError(str(message or failure), 500)
    return chunk


def _error_message(body: bytes, response: httpx.Response) -> str:
    """The provider's words from an error body (OpenAI, vLLM, FastAPI shapes), else its text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for value in (error, parsed.get("message"), parsed.get("detail")):
            if isinstance(value, str) and value:
                return value
    if text:
        return text[:_MAX_ERROR_CHARS]
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()

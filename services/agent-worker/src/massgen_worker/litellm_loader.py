"""Loading litellm, and warming up both ways of calling a model, off the event loop.

``import litellm`` takes seconds, so it happens at most once per process, in a thread,
and only when a call or a served provider needs it (``needs_litellm``); a worker whose
calls all go direct never pays it. This is the only module that imports litellm.

``apreload`` readies a process and its event loop for turns: the direct path always
(httpx, TLS context, price map, one throwaway call), litellm when it is needed.
``litellm_ready`` is what a call that needs litellm awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from types import ModuleType

from massgen_proto.providers import BACKENDS

from .direct import DIRECT_TYPES, wire_request

__all__ = ["TRANSPORT_ENV", "apreload", "litellm_ready", "loaded", "needs_litellm", "preload"]

TRANSPORT_ENV = "MASSGEN_MODEL_TRANSPORT"
"""``litellm``: send every call through litellm (default ``auto``: see ``llm``)."""

_preload_lock = threading.Lock()
_litellm: ModuleType | None = None
_warm_task: asyncio.Future[None] | None = None
_direct_warm_task: asyncio.Future[None] | None = None


def loaded() -> ModuleType | None:
    """The litellm module when this process has loaded it, else None (never loads it)."""
    return _litellm


def preload() -> ModuleType:
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


async def apreload(providers: Iterable[str] | None = None) -> ModuleType | None:
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
        return await litellm_ready()
    return None


def _prepare_direct() -> None:
    from . import openai_http, price_map

    openai_http.prepare()
    price_map.load()  # litellm's price map, for ``pricing`` (~30 ms of JSON)


def _preload_paused() -> ModuleType:
    """``preload`` with the cyclic GC paused (see ``massgen_kit.runtime.loading_code``)."""
    if _litellm is not None:
        return _litellm
    from massgen_kit.runtime import loading_code

    with loading_code():
        return preload()


async def litellm_ready() -> ModuleType:
    """litellm imported off the event loop, then one warm-up call on this loop.

    The import runs in a thread. litellm's async path still imports ~0.5 s of modules
    on its first call (the openai client's resources, the tokenizer for usage), so a
    streamed call with a tool to a throwaway local server pays that here instead of in
    the provider call. Clients are made on this loop.
    """
    global _warm_task
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


async def _warm_up_async(litellm: ModuleType) -> None:
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

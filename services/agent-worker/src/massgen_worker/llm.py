"""The one seam between a turn and the model providers.

``turn.py`` depends on the ``Model`` protocol only. ``LiteLLMModel`` is its
implementation: it plans every call as one litellm call (``call_plan.plan_call``), then
sends it either straight over HTTP or through litellm. This module and ``openai_http``
are the only ones that reach a provider; litellm is imported lazily, by
``litellm_loader`` only: ``import litellm`` takes seconds, so a worker whose calls all
go direct never pays it.

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
the model, see ``provider_params``); a call with such a parameter loads litellm off the
event loop first, and may still be sent direct.

Where each part lives:

- ``call_plan``: backend and conversation -> one call (key, endpoint, provider tools);
- ``provider_params``: the config's provider parameters as litellm takes them;
- ``litellm_loader``: loading litellm and warming up both paths (``apreload``);
- ``model_errors``: ``RetryableModelError`` (rate limits, 5xx, timeouts, connection
  errors) and ``FatalModelError`` (auth, bad request, missing key, unknown backend
  type), each carrying the provider's message;
- this module: the ``Model`` protocol and sending a planned call down either path.

Every name of those modules a caller needs is importable from here as well.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol

import structlog
from massgen_proto.messages import BackendSpec

from .call_plan import CallPlan, build_call_params, plan_call
from .direct import DIRECT_TYPES, litellm_reason, wire_request
from .litellm_loader import (
    TRANSPORT_ENV,
    apreload,
    litellm_ready,
    loaded,
    needs_litellm,
    preload,
)
from .model_errors import (
    FatalModelError,
    ModelError,
    RetryableModelError,
    classify_error,
    error_for_status,
)
from .provider_params import needs_tables
from .stream import StreamDelta
from .wire import Message, Tool

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


class Model(Protocol):
    """A chat model that streams one response.

    ``stream`` yields the response's deltas in order and raises ``ModelError``
    (retryable or fatal) when the provider fails, before or during the stream.
    """

    def stream(
        self,
        messages: list[Message],
        tools: list[Tool] | None,
        tool_choice: str | None,
    ) -> AsyncIterator[StreamDelta]: ...


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
        messages: list[Message],
        tools: list[Tool] | None,
        tool_choice: str | None,
    ) -> AsyncIterator[StreamDelta]:
        """Stream one response (see ``Model.stream``)."""
        backend = self.backend
        litellm_only = self.transport == "litellm" or backend.type not in DIRECT_TYPES
        if litellm_only or (loaded() is None and needs_tables(backend)):
            await litellm_ready()  # planning reads litellm's tables: load them off the loop
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


async def _stream_direct(plan: CallPlan) -> AsyncGenerator[StreamDelta, None]:
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


async def _stream_litellm(plan: CallPlan) -> AsyncGenerator[StreamDelta, None]:
    """One call through ``litellm.acompletion``."""
    litellm = await litellm_ready()
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

"""Each model call's latency, time to first token and failures, as metrics (and the time
to first token on the call's span, when it is traced).

A wrapper around the turn's model: the turn code stays the same, and a stream the turn
stops reading early (a complete tool call) and finishes later (its token count) is
timed to its real end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from massgen_kit import tracing

from .llm import FatalModelError, Model
from .metrics import MODEL_ERRORS, MODEL_FIRST_TOKEN, MODEL_SECONDS, error_class
from .stream import StreamDelta
from .wire import Message, Tool

__all__ = ["TimedModel"]


class TimedModel:
    """``model`` with ``massgen_model_request_seconds``, ``massgen_model_first_token_seconds``
    and, for errors retrying cannot help (a bad key, a bad request), ``massgen_model_errors_total``
    (retryable ones are counted as the worker retries them)."""

    def __init__(self, model: Model, provider: str, name: str) -> None:
        self.model = model
        self.labels = {"provider": provider, "model": name}

    def stream(
        self,
        messages: list[Message],
        tools: list[Tool] | None,
        tool_choice: str | None = None,
    ) -> AsyncIterator[StreamDelta]:
        return self._timed(self.model.stream(messages, tools, tool_choice))

    async def _timed(self, deltas: AsyncIterator[StreamDelta]) -> AsyncIterator[StreamDelta]:
        started = time.perf_counter()
        first = True
        try:
            async for delta in deltas:
                if first:
                    waited = time.perf_counter() - started
                    MODEL_FIRST_TOKEN.observe(waited, **self.labels)
                    # On the model call's span (when it is recorded) too.
                    tracing.set_attributes(first_token_s=round(waited, 6))
                    first = False
                yield delta
        except FatalModelError as error:
            # ``class`` is a keyword: the label goes in as a mapping.
            labels = {"provider": self.labels["provider"], "class": error_class(error.status)}
            MODEL_ERRORS.inc(1.0, **labels)
            raise
        finally:
            MODEL_SECONDS.observe(time.perf_counter() - started, **self.labels)
            aclose = getattr(deltas, "aclose", None)
            if aclose is not None:
                await aclose()

"""The ends of finished responses' streams, read in the background (one reader per worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

__all__ = ["StreamEnds"]


class StreamEnds:
    """Ends of finished responses' streams, read in the background; one per worker.

    A tool-call response is acted on as soon as the model finishes it. The stream's
    last chunk (token usage) comes only after litellm's end-of-stream bookkeeping,
    ~25 ms of CPU per stream, so it is read ``pause`` seconds later, once the turns the
    call triggers have started. A presentation waits for its run's pending ends
    first, so their usage is published before its report can finish the run.

    Args:
        pause: seconds before a stream's end is read.
    """

    def __init__(self, pause: float = 0.1) -> None:
        self.pause = pause
        self._pending: dict[str, set[asyncio.Task[None]]] = {}

    def read_later(self, run_id: str, reading: Awaitable[None]) -> asyncio.Task[None]:
        """Run ``reading`` (a stream end of run ``run_id``) in the background."""
        task = asyncio.ensure_future(reading)
        pending = self._pending.setdefault(run_id, set())
        pending.add(task)

        def done(_: asyncio.Task[None]) -> None:
            pending.discard(task)
            if not pending and self._pending.get(run_id) is pending:
                del self._pending[run_id]

        task.add_done_callback(done)
        return task

    async def settle(self, run_id: str, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the run's stream ends pending now."""
        pending = self._pending.get(run_id)
        if pending and timeout > 0:
            await asyncio.wait(set(pending), timeout=timeout)

"""Publishing one turn's events: streamed text in small batches, anything else at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from massgen_proto.events import Chunk, ChunkChannel, TokenUsage

from .coalesce import Batch, ChunkBatcher

__all__ = ["ChunkPublisher", "Emit"]

Emit = Callable[[Chunk | TokenUsage], Awaitable[None]]


class ChunkPublisher:
    """Publishes one turn's events through ``emit``, in order: streamed text in small
    batches (see ``coalesce.ChunkBatcher``), anything else at once, after the text that
    was pending before it.

    A timer on the event loop lets pending text out at the batcher's deadline, so text
    never waits longer than ``max_delay`` even while the model pauses.

    Args:
        emit: publishes one event.
        make_chunk: builds the turn's chunk event of a channel and text.
        batcher: the batching policy.
    """

    def __init__(
        self,
        emit: Emit,
        make_chunk: Callable[[ChunkChannel, str], Chunk],
        batcher: ChunkBatcher,
    ) -> None:
        self._emit = emit
        self._make_chunk = make_chunk
        self.batcher = batcher
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._tool_names: dict[str, str] = {}
        """Call id -> tool name, for ``tool_args`` batches."""

    def start_response(self) -> None:
        """A model response begins: its first piece of text goes out at once."""
        self.batcher.start()

    async def text(
        self, channel: ChunkChannel, text: str, *, key: str | None = None, name: str | None = None
    ) -> None:
        """Streamed text of ``channel`` (``key``/``name``: the tool call, for tool_args)."""
        if key is not None and name is not None:
            self._tool_names[key] = name
        loop = asyncio.get_running_loop()
        async with self._lock:
            await self._send(self.batcher.add(channel, text, loop.time(), key))
        self._arm(loop)

    async def event(self, event: Chunk | TokenUsage) -> None:
        """Any other event: the pending text first, then ``event``."""
        async with self._lock:
            await self._send(self.batcher.flush())
            await self._emit(event)
        self._disarm()

    async def flush(self) -> None:
        """Publish whatever text is pending."""
        async with self._lock:
            await self._send(self.batcher.flush())
        self._disarm()

    async def close(self) -> None:
        """Stop the timer and any flush it started (the turn is over or cancelled)."""
        self._disarm()
        flushes, self._flushes = self._flushes, set()
        for task in flushes:
            task.cancel()
        await asyncio.gather(*flushes, return_exceptions=True)

    async def _send(self, batches: list[Batch]) -> None:
        for batch in batches:
            text = batch.text
            if batch.channel == "tool_args":
                name = self._tool_names.get(batch.key or "", "")
                text = json.dumps({"id": batch.key, "name": name, "delta": text})
            await self._emit(self._make_chunk(batch.channel, text))

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = self.batcher.deadline()
        if deadline is None:
            self._disarm()
            return
        if self._timer is not None and self._timer_at == deadline:
            return
        self._disarm()
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        task = asyncio.ensure_future(self.flush())
        self._flushes.add(task)
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed publish surfaces at the next event

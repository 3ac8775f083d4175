"""When streamed text is published: in small batches, not one NATS message per token.

Pure: no I/O, no clock of its own (``now`` comes in). A fast provider streams hundreds
of tokens a second per agent; publishing each as its own event costs a message, a JSON
dump and a stream write per token, in the worker, NATS and every reader. The batcher
keeps the text of one response in order and lets it out:

- the first piece of a response at once (first-token latency stays what it was);
- everything pending once it holds ``max_chars`` characters;
- everything pending once its oldest piece has waited ``max_delay`` seconds (the
  caller arms a timer for ``deadline()``, so a model that pauses does not hold text);
- everything pending before any other event of the turn (``flush``), so readers see
  events in the order they happened.

Consecutive pieces of the same channel (and key: the tool call, for ``tool_args``) are
joined; a change of channel starts a new batch, so order across channels is kept.
``max_delay`` 0 turns batching off (every piece is its own batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from massgen_proto.events import ChunkChannel

__all__ = ["Batch", "ChunkBatcher", "Coalescing"]


@dataclass(frozen=True, slots=True)
class Coalescing:
    """A worker's batching settings (``WorkerSettings.chunk_flush_*``)."""

    max_delay: float = 0.05
    """Seconds streamed text may wait to be published with what follows (0: never)."""
    max_chars: int = 256
    """Characters that make a batch go out before ``max_delay``."""

    def batcher(self) -> ChunkBatcher:
        return ChunkBatcher(self.max_delay, self.max_chars)


@dataclass(slots=True)
class Batch:
    """Text of one channel (and key) to publish as one chunk event."""

    channel: ChunkChannel
    key: str | None
    parts: list[str] = field(default_factory=list)
    """The pieces, in order (joined by ``text``)."""

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ChunkBatcher:
    """Decides when the streamed text of a response goes out (see the module doc).

    Args:
        max_delay: seconds a piece may wait before it is published (0: no batching).
        max_chars: characters pending that make a batch go out at once.
    """

    def __init__(self, max_delay: float = 0.05, max_chars: int = 256) -> None:
        if max_delay < 0 or max_chars < 1:
            raise ValueError(f"need max_delay >= 0 and max_chars >= 1: {max_delay}, {max_chars}")
        self.max_delay = max_delay
        self.max_chars = max_chars
        self._pending: list[Batch] = []
        self._chars = 0
        self._since: float | None = None
        """When the oldest pending piece arrived."""
        self._fresh = True

    def start(self) -> None:
        """A new response begins: its first piece goes out at once."""
        self._fresh = True

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def add(
        self, channel: ChunkChannel, text: str, now: float, key: str | None = None
    ) -> list[Batch]:
        """Queue ``text``; return the batches to publish now (possibly none)."""
        if not text:
            return []
        last = self._pending[-1] if self._pending else None
        if last is not None and last.channel == channel and last.key == key:
            last.parts.append(text)
        else:
            self._pending.append(Batch(channel, key, [text]))
        self._chars += len(text)
        if self._since is None:
            self._since = now
        if self._fresh or self.max_delay == 0 or self._chars >= self.max_chars:
            self._fresh = False
            return self.flush()
        return self.due(now)

    def deadline(self) -> float | None:
        """When the pending text must be out (None: nothing pending)."""
        return None if self._since is None else self._since + self.max_delay

    def due(self, now: float) -> list[Batch]:
        """Everything pending if its oldest piece has waited ``max_delay``, else nothing."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        return self.flush()

    def flush(self) -> list[Batch]:
        """Everything pending, in order (then nothing is)."""
        batches, self._pending = self._pending, []
        self._chars, self._since = 0, None
        return batches

"""The runs KV bucket as the orchestrator uses it: consistent reads, compare-and-set
writes, and a watch that keeps every replica's cache of open runs current.

Reads go to the stream leader (``STREAM.MSG.GET``), never a direct get, which a
follower may answer from behind: a verdict must never come from a state older than
the latest committed revision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from massgen_kit.jetstream import NO_MESSAGE, OrderedFollower
from massgen_proto.subjects import RUNS_BUCKET
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

from .state import RunState

__all__ = ["Conflict", "RunStore", "Stored"]

log = structlog.get_logger("orchestrator")

_STREAM = f"KV_{RUNS_BUCKET}"
_KEY_PREFIX = f"$KV.{RUNS_BUCKET}."


class Conflict(Exception):
    """Another replica committed first: reload and apply again."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A run state as committed, with its KV revision."""

    state: RunState
    revision: int


class RunStore:
    """Run states in the KV bucket ``massgen_runs``.

    Args:
        js: the JetStream context.
        kv: the bucket (from ``ensure_runs_bucket``).
    """

    def __init__(self, js: Any, kv: Any) -> None:
        self._js = js
        self._kv = kv
        self._follower: OrderedFollower | None = None
        self._task: asyncio.Task[None] | None = None

    async def latest(self, run_id: str) -> Stored | None:
        """The run's latest committed state, read from the stream leader (None: no run)."""
        try:
            raw = await self._js.get_last_msg(_STREAM, _KEY_PREFIX + run_id)
        except NotFoundError as error:
            if error.err_code == NO_MESSAGE:
                return None
            raise  # the stream is not there yet (a node joining): retried by the caller
        if raw.headers and raw.headers.get("KV-Operation") in ("DEL", "PURGE"):
            return None
        if not raw.data:
            return None
        return Stored(RunState.model_validate_json(raw.data), raw.seq)

    async def latest_revision(self, run_id: str) -> int | None:
        """The revision of the run's latest committed state (None: no run)."""
        stored = await self.latest(run_id)
        return None if stored is None else stored.revision

    async def create(self, state: RunState) -> int:
        """Write a new run; raises if the key exists."""
        return await self._kv.create(state.run_id, state.model_dump_json().encode())

    async def update(self, state: RunState, last: int) -> int:
        """Compare-and-set: write ``state`` if ``last`` is still the latest revision.

        Raises:
            Conflict: another replica wrote the run since ``last``.
        """
        try:
            return await self._kv.update(state.run_id, state.model_dump_json().encode(), last=last)
        except KeyWrongLastSequenceError as error:
            raise Conflict(state.run_id) from error

    async def watch(self, on_update: Callable[[str, bytes | None, int], Awaitable[None]]) -> None:
        """Call ``on_update(run_id, value or None when deleted, revision)`` for the latest
        value of every run now, then for every later write, in revision order.

        Every replica takes over a dead replica's runs through this watch, so it must
        not go silent when the NATS node holding its consumer dies (``OrderedFollower``).
        """
        from nats.js.api import ConsumerConfig, DeliverPolicy

        start = ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                               inactive_threshold=300.0)  # fmt: skip
        self._follower = await OrderedFollower(self._js, _STREAM, f"{_KEY_PREFIX}>", start).start()
        self._task = asyncio.create_task(self._watch(on_update), name="runs-watch")

    async def _watch(self, on_update: Callable[[str, bytes | None, int], Awaitable[None]]) -> None:
        assert self._follower is not None
        while True:
            msg = await self._follower.next(timeout=2.0)
            if msg is None:
                continue
            key = msg.subject[len(_KEY_PREFIX) :]
            deleted = (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE")
            try:
                await on_update(key, None if deleted else msg.data, msg.metadata.sequence.stream)
            except Exception as error:  # noqa: BLE001 - one bad entry must not stop the watch
                log.error("runs_watch.entry_failed", run_id=key, error=repr(error))

    async def stop(self) -> None:
        """Stop the watch."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._follower is not None:
            await self._follower.close()

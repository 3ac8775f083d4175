"""The runs KV bucket as the orchestrator uses it: consistent reads, compare-and-set
writes, and a watch that tells every replica what each open run is waiting for.

Reads go to the stream leader (``STREAM.MSG.GET``), never a direct get, which a
follower may answer from behind: a verdict must never come from a state older than
the latest committed revision.

Every write carries a ``Massgen-Run`` header, the few facts a replica needs to hold a
run's timers and take it over (``RunSummary``), and the watch delivers headers only. A
replica that did not write a state never decodes it unless it has to act on the run:
replicas then share the work instead of each repeating every other's, so adding one
adds capacity.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from massgen_kit.jetstream import NO_MESSAGE, OrderedFollower
from massgen_proto.subjects import RUNS_BUCKET
from nats.js.errors import APIError, NotFoundError

from .state import RunState, next_wakeup

__all__ = ["SUMMARY_HEADER", "Conflict", "RunStore", "RunSummary", "Stored"]

log = structlog.get_logger("orchestrator")

_STREAM = f"KV_{RUNS_BUCKET}"
_KEY_PREFIX = f"$KV.{RUNS_BUCKET}."
_WRONG_LAST = (10071, 10164)  # JetStream: the subject's last sequence is not the expected one
SUMMARY_HEADER = "Massgen-Run"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a replica must know of a committed state to hold the run's timers.

    ``known`` False: the write carried no summary (a replica of an older version wrote
    it); the replica then reads the whole state.
    """

    writer: str = ""
    committed_at: float = 0.0
    wake: float | None = None
    over: bool = False
    outbox: int = 0
    known: bool = True

    @classmethod
    def of(cls, state: RunState) -> RunSummary:
        return cls(state.writer, state.committed_at, next_wakeup(state), state.over,
                   len(state.outbox))  # fmt: skip

    def encode(self) -> str:
        return json.dumps([self.writer, self.committed_at, self.wake, self.over, self.outbox])

    @classmethod
    def decode(cls, text: str | None) -> RunSummary:
        try:
            writer, committed, wake, over, outbox = json.loads(text or "")
            return cls(str(writer), float(committed), None if wake is None else float(wake),
                       bool(over), int(outbox))  # fmt: skip
        except (ValueError, TypeError):
            return cls(known=False)


OnUpdate = Callable[[str, "RunSummary | None", int], Awaitable[None]]


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
        """Write a new run.

        Raises:
            Conflict: the key exists (run ids are never reused, so never after a delete).
        """
        return await self.update(state, 0)

    async def update(self, state: RunState, last: int) -> int:
        """Compare-and-set: write ``state`` if ``last`` is still the latest revision
        (0: no revision yet), with its summary for the other replicas' watches.

        Raises:
            Conflict: another replica wrote the run since ``last``.
        """
        headers = {
            "Nats-Expected-Last-Subject-Sequence": str(last),
            SUMMARY_HEADER: RunSummary.of(state).encode(),
        }
        try:
            ack = await self._js.publish(
                _KEY_PREFIX + state.run_id, state.model_dump_json().encode(), headers=headers
            )
        except APIError as error:
            if error.err_code in _WRONG_LAST:
                raise Conflict(state.run_id) from error
            raise
        return int(ack.seq)

    async def watch(self, on_update: OnUpdate) -> None:
        """Call ``on_update(run_id, summary or None when deleted, revision)`` for the
        latest write of every run now, then for every later write, in revision order.

        Every replica takes over a dead replica's runs through this watch, so it must
        not go silent when the NATS node holding its consumer dies (``OrderedFollower``).
        """
        from nats.js.api import ConsumerConfig, DeliverPolicy

        start = ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                               headers_only=True, inactive_threshold=300.0)  # fmt: skip
        self._follower = await OrderedFollower(self._js, _STREAM, f"{_KEY_PREFIX}>", start).start()
        self._task = asyncio.create_task(self._watch(on_update), name="runs-watch")

    async def _watch(self, on_update: OnUpdate) -> None:
        assert self._follower is not None
        while True:
            msg = await self._follower.next(timeout=2.0)
            if msg is None:
                continue
            key = msg.subject[len(_KEY_PREFIX) :]
            headers = msg.headers or {}
            deleted = headers.get("KV-Operation") in ("DEL", "PURGE")
            summary = None if deleted else RunSummary.decode(headers.get(SUMMARY_HEADER))
            try:
                await on_update(key, summary, msg.metadata.sequence.stream)
            except Exception as error:  # noqa: BLE001 - one bad entry must not stop the watch
                log.error("runs_watch.entry_failed", run_id=key, error=repr(error))

    async def stop(self) -> None:
        """Stop the watch."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._follower is not None:
            await self._follower.close()

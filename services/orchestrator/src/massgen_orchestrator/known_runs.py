"""The runs one orchestrator replica knows: their latest states or summaries, and timers.

A replica knows a run whole when it wrote or read its state, and by its summary when it
only watched it (``store.RunSummary``): enough to hold the run's timers and take it over
if its writer dies, without decoding a state it may never act on. The replica that
wrote a state acts on its timers on time; the others a grace later.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from pydantic import ValidationError

from .outbox import REPLAY_WINDOW_SECONDS, CachedRun
from .state import RunState
from .store import RunStore, RunSummary

__all__ = ["KnownRuns"]

log = structlog.get_logger("orchestrator")


class KnownRuns:
    """The replica's runs by id, kept current by its own writes and the runs watch.

    Args:
        replica: this replica's name (a state's ``writer``).
        grace: ``takeover_grace_seconds``: how late a replica that did not write a
            state acts on its timers.
        clock: epoch seconds.
        on_timer: called with a run id when its timer fires.
        spawn: runs a coroutine as a task of the service.
    """

    def __init__(
        self,
        replica: str,
        grace: float,
        clock: Callable[[], float],
        on_timer: Callable[[str], None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._replica, self._grace, self._clock = replica, grace, clock
        self._on_timer, self._spawn = on_timer, spawn
        self.runs: dict[str, CachedRun] = {}
        self.store: RunStore | None = None
        self.stopped = False

    def get(self, run_id: str) -> CachedRun | None:
        return self.runs.get(run_id)

    def put(self, state: RunState, revision: int) -> CachedRun:
        """Hold a state read or written (a newer revision replaces an older one)."""
        run = self.runs.get(state.run_id)
        if run is None:
            run = CachedRun.of(state, revision)
            self.runs[state.run_id] = run
            if self._clock() - state.committed_at > REPLAY_WINDOW_SECONDS:
                run.executed = revision
        else:
            self.adopt(run, state, revision)
        return run

    @staticmethod
    def adopt(run: CachedRun, state: RunState, revision: int) -> None:
        if revision > run.revision:
            run.state, run.revision = state, revision
        if revision >= run.known:
            run.summary, run.known = RunSummary.of(state), revision

    async def refresh(self, run: CachedRun) -> None:
        """Read the run's latest state (another replica wrote it since)."""
        assert self.store is not None
        stored = await self.store.latest(run.run_id)
        if stored is not None:
            self.adopt(run, stored.state, stored.revision)

    async def load(self, run_id: str) -> CachedRun | None:
        """The run as known here, else as read from the bucket (None: no such run)."""
        run = self.runs.get(run_id)
        if run is not None:
            return run
        assert self.store is not None
        try:
            stored = await self.store.latest(run_id)
        except ValueError:  # not a valid key
            return None
        if stored is None:
            return None
        return self.put(stored.state, stored.revision)

    async def on_watch(self, run_id: str, summary: RunSummary | None, revision: int) -> None:
        """A write seen by the runs watch (``summary`` None: the run was deleted)."""
        run = self.runs.get(run_id)
        if summary is None:
            self.forget(run_id)
            return
        if run is not None and revision <= run.known:
            return  # our own write, or older than what we know
        if not summary.known:  # written without a summary: read the state itself
            self._spawn(self._read_whole(run_id))
            return
        young = self._clock() - summary.committed_at <= REPLAY_WINDOW_SECONDS
        if summary.over and not (summary.outbox and young):
            self.forget(run_id)
            return
        # An ended run whose last commands may not have gone out (its writer may have
        # died) stays until they are known executed: its run_finished must be published.
        if run is None:
            run = CachedRun(run_id, None, -1, summary, revision, asyncio.Lock())
            self.runs[run_id] = run
            if not young:
                run.executed = revision
        else:
            run.summary, run.known = summary, revision
        self.settle(run)

    async def _read_whole(self, run_id: str) -> None:
        assert self.store is not None
        try:
            stored = await self.store.latest(run_id)
        except (ValidationError, ValueError) as error:
            log.error("run.unreadable", run_id=run_id, error=repr(error))
            return
        if stored is not None:
            self.settle(self.put(stored.state, stored.revision))

    def settle(self, run: CachedRun) -> None:
        """Forget an ended run whose last outbox is known executed; else arm its timer."""
        if run.summary.over and not run.outbox_pending:
            self.forget(run.run_id)
        else:
            self.schedule(run)

    def schedule(self, run: CachedRun) -> None:
        """Arm the run's timer: the next wake-up, or finishing an unexecuted outbox.

        The replica that wrote the state acts on time; the others a grace later, which
        is what makes them take over from a replica that died.
        """
        if run.timer:
            run.timer.cancel()
            run.timer = None
        if self.stopped:
            return
        summary = run.summary
        grace = 0.0 if summary.writer == self._replica else self._grace
        times = []
        if summary.wake is not None:
            times.append(summary.wake + grace)
        if run.outbox_pending:
            due = summary.committed_at + max(grace, 0.5)
            if run.failures:  # a failed execution is retried with backoff, not in a loop
                backoff = min(2.0, 0.1 * 2**run.failures) * random.uniform(0.5, 1.0)
                due = max(due, self._clock() + backoff)
            times.append(due)
        if not times:
            return
        delay = max(0.0, min(times) - self._clock())
        run.timer = asyncio.get_running_loop().call_later(delay, self._on_timer, run.run_id)

    def forget(self, run_id: str) -> None:
        run = self.runs.pop(run_id, None)
        if run and run.timer:
            run.timer.cancel()

    def stop(self) -> None:
        """Disarm every timer; no new one is armed."""
        self.stopped = True
        for run in self.runs.values():
            if run.timer:
                run.timer.cancel()

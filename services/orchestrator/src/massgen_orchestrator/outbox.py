"""Executing a committed state's commands (its outbox) exactly once in effect.

Every message carries the JetStream id ``<run>:<revision>:<index>``, which JetStream
drops the second time: a revision names one committed state, written once, so any
replica may execute an outbox any number of times and each turn and event goes out once.
A repeated cancel is harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from massgen_kit import tracing
from massgen_proto import subjects

from .commands import CancelTurnCommand, Command, EmitEvent, PublishTurn
from .state import RunState
from .store import RunSummary

__all__ = ["REPLAY_WINDOW_SECONDS", "CachedRun", "Outbox"]

log = structlog.get_logger("orchestrator")

WRITER_WAIT_SECONDS = 0.25
"""How long a replica waits for a state's writer to announce its outbox executed before
executing it itself (see ``Outbox.wait_for_writer``)."""

REPLAY_WINDOW_SECONDS = 90.0
"""An outbox older than this is taken as executed: JetStream's duplicate window (2 min
by default) would no longer catch a second publish, and a live replica executes an
outbox within milliseconds, a takeover within ``takeover_grace_seconds``."""


@dataclass(slots=True)
class CachedRun:
    """A run this replica knows: the latest state it read or wrote, the summary of the
    latest revision it heard of (``store.RunSummary``), its lock and timer.

    A replica that only watched a run holds its summary and no state (``state`` None),
    and reads the state when it has to act on the run (``stale``).
    """

    run_id: str
    state: RunState | None
    revision: int
    """The revision of ``state`` (-1: none read yet)."""
    summary: RunSummary
    """Of revision ``known``: who wrote it, when, its next wake-up, its outbox's size."""
    known: int
    """The latest revision this replica knows of (the watch may be ahead of ``state``)."""
    lock: asyncio.Lock
    timer: asyncio.TimerHandle | None = None
    executed: int = -1
    """Highest revision whose outbox is known to be executed."""
    failures: int = 0
    """Outbox executions failed in a row (NATS refusing): retries back off."""
    announced: asyncio.Event | None = None
    """Set when a replica announces an outbox executed (while someone waits for it)."""

    @classmethod
    def of(cls, state: RunState, revision: int) -> CachedRun:
        return cls(state.run_id, state, revision, RunSummary.of(state), revision, asyncio.Lock())

    @property
    def stale(self) -> bool:
        """True when ``state`` is missing or older than the latest known revision."""
        return self.state is None or self.known > self.revision

    @property
    def current(self) -> RunState:
        """The state, which the caller has made current (``stale`` False)."""
        assert self.state is not None, "the run's state was not read"
        return self.state

    @property
    def outbox_pending(self) -> bool:
        return self.summary.outbox > 0 and self.executed < self.known


class Outbox:
    """Publishes outboxes for one replica, and says on ``massgen.orchestrator.executed``
    which it executed so the other replicas need not."""

    def __init__(self, nc: Any, js: Any, replica: str, clock: Callable[[], float]) -> None:
        self._nc, self._js, self._replica, self._clock = nc, js, replica, clock
        self._token = subjects.replica_token(replica)

    async def execute(self, run: CachedRun) -> None:
        """Execute the outbox of the run's state unless it is known to be executed.
        Called with the run's lock held; raises when NATS refuses (nothing is lost: the
        outbox stays pending and the run's timer retries it)."""
        if not run.outbox_pending:
            return
        state, revision = run.current, run.revision
        if self._clock() - state.committed_at > REPLAY_WINDOW_SECONDS:
            log.warning("run.outbox_expired", run_id=state.run_id, revision=revision)
            run.executed = revision
            return
        if state.writer != self._replica:
            log.info("run.outbox_takeover", run_id=state.run_id, writer=state.writer,
                     revision=revision, commands=len(state.outbox))  # fmt: skip
        try:
            for index, command in enumerate(state.outbox):
                headers = {"Nats-Msg-Id": f"{state.run_id}:{revision}:{index}"}
                if state.traceparent and isinstance(command, PublishTurn):
                    # The trace goes on with the turn; no reader continues it from an event.
                    headers[tracing.TRACEPARENT] = state.traceparent
                await self._perform(state.run_id, command, headers)
        except Exception:
            run.failures += 1
            raise
        run.failures = 0
        run.executed = max(run.executed, revision)
        await self._nc.publish(
            subjects.ORCHESTRATOR_EXECUTED, f"{state.run_id} r{revision}".encode()
        )

    async def wait_for_writer(self, run: CachedRun) -> None:
        """Another replica committed this state a moment ago and is executing its outbox:
        wait (briefly) for it to say so instead of publishing every message again.

        A report for a turn usually reaches another replica while the writer is still
        publishing the rest of its outbox; executing it there too is harmless (JetStream
        drops the duplicates) but doubles the publishes. A writer that died is taken
        over after the wait.
        """
        summary = run.summary
        if not run.outbox_pending or summary.writer == self._replica:
            return
        left = min(WRITER_WAIT_SECONDS, summary.committed_at + WRITER_WAIT_SECONDS - self._clock())
        if left <= 0:
            return
        run.announced = asyncio.Event()
        try:
            async with asyncio.timeout(left):
                while run.outbox_pending:
                    await run.announced.wait()
                    run.announced.clear()
        except TimeoutError:
            pass
        finally:
            run.announced = None

    async def try_execute(self, run: CachedRun) -> None:
        """``execute``, leaving a failure to the run's timer."""
        try:
            await self.execute(run)
        except Exception as error:  # noqa: BLE001 - the state is committed: retried later
            log.warning("run.outbox_failed", run_id=run.current.run_id, error=repr(error))

    async def _perform(self, run_id: str, command: Command, headers: dict[str, str]) -> None:
        match command:
            case PublishTurn():
                # Reports come back to this replica, which holds the run's state.
                request = command.request.model_copy(update={"orchestrator": self._token})
                await self._js.publish(
                    subjects.turn_subject(command.provider),
                    request.model_dump_json().encode(),
                    headers=headers,
                )
            case CancelTurnCommand():
                await self._nc.publish(
                    subjects.control_subject(run_id), command.cancel.model_dump_json().encode()
                )
            case EmitEvent():
                await self._js.publish(
                    subjects.events_subject(run_id, "run"),
                    command.event.model_dump_json().encode(),
                    headers=headers,
                )
            case _:
                raise AssertionError(f"unhandled command {command!r}")

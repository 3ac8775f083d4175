"""The orchestrator's NATS adapter: the only module here that touches NATS.

It turns messages into inputs of the pure state machine (``coordination.apply``),
writes the run state to the KV bucket after every transition (compare-and-set, so
two replicas never overwrite each other), then executes the commands: publish turn
requests, cancel turns, emit run events, reply to the worker. Timers come from
``next_wakeup``: time reaches the state machine as ``Tick`` inputs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import nats
import structlog
from massgen_proto import subjects
from massgen_proto.config import ConfigError, parse_config
from massgen_proto.ids import new_run_id
from massgen_proto.jetstream import (
    close_connection,
    ensure_events_stream,
    ensure_runs_bucket,
    ensure_turns_stream,
)
from massgen_proto.messages import (
    CancelRun,
    CreateRun,
    ErrorReply,
    RunAccepted,
    Verdict,
    WorkerReportAdapter,
)
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from pydantic import ValidationError

from . import coordination
from .commands import CancelTurnCommand, Command, EmitEvent, PublishTurn, ReplyVerdict, Tick
from .settings import OrchestratorSettings
from .state import RunState, next_wakeup

__all__ = ["OrchestratorService"]

log = structlog.get_logger("orchestrator")

_STALE_UNKNOWN = Verdict(status="stale", message="this run is unknown or over")


@dataclass(slots=True)
class _Run:
    """A run this replica has loaded: its state, KV revision, lock and timer."""

    state: RunState
    revision: int
    lock: asyncio.Lock
    timer: asyncio.TimerHandle | None = None


class OrchestratorService:
    """One orchestrator replica. Several may run against the same NATS cluster."""

    def __init__(
        self,
        settings: OrchestratorSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or OrchestratorSettings()
        self._clock = clock
        self._nc: Client | None = None
        self._js = None
        self._kv = None
        self._runs: dict[str, _Run] = {}
        self._subs: list = []
        self._tasks: set[asyncio.Task] = set()
        self._stopped = False
        self.cpu_seconds = 0.0
        """Process CPU time spent handling messages (measured by the benchmark)."""

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, make sure streams and the bucket exist, resume open runs, subscribe."""
        self._nc = await nats.connect(
            self.settings.nats_url,
            name=f"orchestrator-{self.settings.replica}",
            max_reconnect_attempts=-1,
        )
        self._js = self._nc.jetstream()
        stream_settings = self.settings.stream_settings()
        await ensure_turns_stream(self._js, stream_settings)
        await ensure_events_stream(self._js, stream_settings)
        self._kv = await ensure_runs_bucket(self._js, stream_settings)
        await self._resume_open_runs()
        queue = subjects.ORCHESTRATOR_QUEUE
        for subject, handler in (
            (subjects.SUBMIT_CREATE, self._on_create),
            (subjects.SUBMIT_REPORT, self._on_report),
            (subjects.SUBMIT_CANCEL, self._on_cancel),
        ):
            self._subs.append(
                await self._nc.subscribe(subject, queue=queue, cb=self._concurrently(handler))
            )
        log.info("orchestrator.started", replica=self.settings.replica, runs=len(self._runs))

    async def stop(self) -> None:
        """Stop taking messages, let handlers in flight finish, close. Safe to call twice."""
        if self._stopped or self._nc is None:
            return
        self._stopped = True
        for sub in self._subs:
            await sub.unsubscribe()
        for run in self._runs.values():
            if run.timer:
                run.timer.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await close_connection(self._nc)
        log.info("orchestrator.stopped", replica=self.settings.replica)

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up (readiness)."""
        return self._nc is not None and self._nc.is_connected

    # -- message handlers ---------------------------------------------------------------

    async def _on_create(self, msg: Msg) -> None:
        started = time.process_time()
        try:
            request = CreateRun.model_validate_json(msg.data)
            config = parse_config(request.config)
        except ValidationError as error:
            await self._respond(msg, ErrorReply(error=f"bad create_run request: {error}"))
            return
        except ConfigError as error:
            await self._respond(msg, ErrorReply(error=str(error)))
            return
        run_id = request.run_id or new_run_id()
        state, commands = coordination.new_run(
            run_id, request.question, config, list(request.history), self._clock()
        )
        try:
            revision = await self._kv.create(run_id, state.model_dump_json().encode())
        except Exception as error:  # an existing key: the caller reused a run id
            await self._respond(msg, ErrorReply(error=f"cannot create run {run_id}: {error}"))
            return
        run = _Run(state=state, revision=revision, lock=asyncio.Lock())
        self._runs[run_id] = run
        async with run.lock:
            await self._execute(run, commands, msg)
            self._schedule(run)
        await self._respond(msg, RunAccepted(run_id=run_id))
        self.cpu_seconds += time.process_time() - started
        log.info("run.created", run_id=run_id, agents=len(config.agents))

    async def _on_report(self, msg: Msg) -> None:
        started = time.process_time()
        try:
            report = WorkerReportAdapter.validate_json(msg.data)
        except ValidationError as error:
            await self._respond(msg, ErrorReply(error=f"bad worker report: {error}"))
            return
        await self._transition(report.run_id, report, msg)
        self.cpu_seconds += time.process_time() - started

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            request = CancelRun.model_validate_json(msg.data)
        except ValidationError as error:
            await self._respond(msg, ErrorReply(error=f"bad cancel_run request: {error}"))
            return
        if not await self._transition(request.run_id, request, None):
            await self._respond(
                msg, ErrorReply(error=f"no run {request.run_id!r}", code="not_found")
            )
            return
        await self._respond(msg, RunAccepted(run_id=request.run_id))

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _concurrently(self, handler):
        """Wrap a handler so each message runs as its own task.

        nats-py runs a subscription's callbacks one at a time; runs are independent
        (each has its own lock), so messages of different runs need not wait in line.
        """

        async def dispatch(msg: Msg) -> None:
            self._spawn(handler(msg))

        return dispatch

    def _on_timer(self, run_id: str) -> None:
        self._spawn(self._transition(run_id, Tick(), None))

    # -- the transition ------------------------------------------------------------------

    async def _transition(self, run_id: str, message, reply_to: Msg | None) -> bool:
        """Apply one input to a run, persist, execute. Returns False if the run is unknown."""
        run = await self._load(run_id)
        if run is None:
            if reply_to is not None:
                await self._respond(reply_to, _STALE_UNKNOWN)
            return False
        async with run.lock:
            for _ in range(self.settings.persist_retries):
                state, commands = coordination.apply(run.state, message, self._clock())
                try:
                    if state != run.state:
                        run.revision = await self._kv.update(
                            run_id, state.model_dump_json().encode(), last=run.revision
                        )
                except KeyWrongLastSequenceError:
                    # Another replica moved this run on: reload and apply to its state.
                    entry = await self._kv.get(run_id)
                    run.state = RunState.model_validate_json(entry.value)
                    run.revision = entry.revision
                    continue
                run.state = state
                await self._execute(run, commands, reply_to)
                self._schedule(run)
                break
            else:
                log.error("run.persist_failed", run_id=run_id)
                if reply_to is not None:
                    await self._respond(reply_to, ErrorReply(error="busy; retry", code="internal"))
        if run.state.status in ("completed", "timed_out", "failed", "cancelled"):
            self._forget(run_id)
        return True

    async def _load(self, run_id: str) -> _Run | None:
        run = self._runs.get(run_id)
        if run is not None:
            return run
        try:
            entry = await self._kv.get(run_id)
        except (KeyNotFoundError, ValueError):
            return None
        state = RunState.model_validate_json(entry.value)
        run = self._runs.setdefault(
            run_id, _Run(state=state, revision=entry.revision, lock=asyncio.Lock())
        )
        return run

    async def _resume_open_runs(self) -> None:
        """Load every run still in progress, so its timers fire on this replica too."""
        try:
            keys = await self._kv.keys()
        except Exception:  # NoKeysError: an empty bucket
            return
        for key in keys:
            run = await self._load(key)
            if run is None:
                continue
            if run.state.status in ("running", "presenting"):
                self._schedule(run)
                log.info("run.resumed", run_id=key, status=run.state.status)
            else:
                self._runs.pop(key, None)

    def _schedule(self, run: _Run) -> None:
        if run.timer:
            run.timer.cancel()
            run.timer = None
        wake = next_wakeup(run.state)
        if wake is None or self._stopped:
            return
        delay = max(0.0, wake - self._clock())
        run.timer = asyncio.get_running_loop().call_later(delay, self._on_timer, run.state.run_id)

    def _forget(self, run_id: str) -> None:
        run = self._runs.pop(run_id, None)
        if run and run.timer:
            run.timer.cancel()

    # -- commands ------------------------------------------------------------------------

    async def _execute(self, run: _Run, commands: list[Command], reply_to: Msg | None) -> None:
        run_id = run.state.run_id
        for command in commands:
            match command:
                case PublishTurn():
                    await self._js.publish(
                        subjects.turn_subject(command.provider),
                        command.request.model_dump_json().encode(),
                    )
                case CancelTurnCommand():
                    await self._nc.publish(
                        subjects.control_subject(run_id), command.cancel.model_dump_json().encode()
                    )
                case EmitEvent():
                    await self._js.publish(
                        subjects.events_subject(run_id), command.event.model_dump_json().encode()
                    )
                case ReplyVerdict():
                    if reply_to is not None:
                        await self._respond(reply_to, command.verdict)
                case _:
                    raise AssertionError(f"unhandled command {command!r}")

    async def _respond(self, msg: Msg, reply) -> None:
        if msg.reply:
            await msg.respond(reply.model_dump_json().encode())

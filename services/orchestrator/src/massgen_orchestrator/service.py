"""The orchestrator's NATS adapter: the only module here that touches NATS.

It turns messages into inputs of the pure state machine (``coordination.apply``) and
makes its decisions durable. The rules that let any number of replicas handle any
message of any run:

- **No verdict from an old state.** A transition that changes the run is written
  with compare-and-set on the KV revision it was computed from; a conflict reloads
  the latest state and applies again. A transition that changes nothing (a ``stale``
  verdict, a redelivered report) checks the latest revision before it replies.
- **Commands are durable with their state.** The commands of a transition are stored
  in the state it produced (``RunState.outbox``) in the same write, then executed with
  JetStream message ids (``<run>:<revision>:<i>``), so executing an outbox twice publishes
  each turn and event once. A replica that loads a state whose outbox it has not seen
  executed runs it before anything else; a replica that executed one says so on
  ``massgen.orchestrator.executed`` so the others need not.
- **Every replica watches every open run** (a KV watch of each write's summary keeps
  the timers; ``store.RunSummary``). The replica that committed a state runs its
  timers; the others fire ``takeover_grace_seconds`` later, so a crashed replica's runs
  and unexecuted outboxes are taken over within about a second. A replica reads a
  state it did not write only when it acts on the run, so replicas add capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import time
from collections.abc import Callable
from typing import Any

import nats
import structlog
from massgen_kit import tracing
from massgen_kit.health import connect_options
from massgen_kit.jetstream import (
    close_connection,
    ensure_events_stream,
    ensure_runs_bucket,
    ensure_turns_stream,
)
from massgen_kit.metrics import REGISTRY
from massgen_proto import subjects
from massgen_proto.config import ConfigError, parse_config
from massgen_proto.ids import new_run_id
from massgen_proto.messages import (
    CancelRun,
    CreateRun,
    ErrorReply,
    RunAccepted,
    TurnFailed,
    TurnRequest,
    Verdict,
    WorkerReportAdapter,
)
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from . import coordination
from .commands import Command, EmitEvent, ReplyVerdict, Tick
from .known_runs import KnownRuns
from .outbox import CachedRun, Outbox
from .settings import OrchestratorSettings
from .state import RunState
from .store import Conflict, RunStore

__all__ = ["OrchestratorService"]

log = structlog.get_logger("orchestrator")

_BUSY = ErrorReply(error="busy; retry", code="internal")
"""The reply when a message could not be handled now: the sender sends it again."""

_STALE_UNKNOWN = Verdict(status="stale", message="this run is unknown or over")

RUNS = REGISTRY.counter("massgen_runs_total", "Runs ended, by status.", ["status"])
RUN_SECONDS = REGISTRY.histogram(
    "massgen_run_duration_seconds", "Wall time of ended runs.", buckets=(1, 5, 10, 30, 60, 120,
                                                                        300, 600, 1800, 3600)
)  # fmt: skip
VERDICTS = REGISTRY.counter(
    "massgen_verdicts_total", "Verdicts on worker reports, by report kind and status.",
    ["kind", "status"],
)  # fmt: skip
RESTARTS = REGISTRY.counter("massgen_restarts_total", "Agent restarts (new answers arrived).")
REFUSED = REGISTRY.counter(
    "massgen_report_refusals_total", "Worker reports refused: no capability for the turn."
)
PENDING = REGISTRY.gauge(
    "massgen_pending_turns",
    "Turn requests waiting for a worker, by provider (the autoscaling signal).", ["provider"],
)  # fmt: skip


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
        self._js: Any = None
        self._store: RunStore | None = None
        self._outbox_: Outbox | None = None
        self._runs = KnownRuns(
            self.settings.replica, self.settings.takeover_grace_seconds, clock,
            self._on_timer, self._spawn,
        )  # fmt: skip
        self._subs: list[Any] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self._poller: asyncio.Task[None] | None = None
        self.cpu_seconds = 0.0
        """Process CPU time spent handling messages (measured by the benchmark)."""
        self.refusals = 0
        """Worker reports refused for not carrying their turn's token."""
        self.catch_ups = 0
        """Reads of a run's state this replica held behind (another replica wrote it):
        few when each run's reports come back to the replica that published its turns."""

    @property
    def _outbox(self) -> Outbox:
        assert self._outbox_ is not None, "not started"
        return self._outbox_

    @property
    def replica(self) -> str:
        return self.settings.replica

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, make sure streams and the bucket exist, watch open runs, subscribe."""
        self._nc = await nats.connect(
            self.settings.nats_url, name=f"orchestrator-{self.replica}", max_reconnect_attempts=-1,
            **connect_options(self.settings.nats_url, "orchestrator"),
        )  # fmt: skip
        self._js = self._nc.jetstream()
        stream_settings = self.settings.stream_settings()
        await ensure_turns_stream(self._js, stream_settings)
        await ensure_events_stream(self._js, stream_settings)
        kv = await ensure_runs_bucket(self._js, stream_settings)
        self._store = self._runs.store = RunStore(self._js, kv)
        self._outbox_ = Outbox(self._nc, self._js, self.replica, self._clock)
        await self._store.watch(self._runs.on_watch)
        queue = subjects.ORCHESTRATOR_QUEUE
        for subject, handler in (
            (subjects.SUBMIT_CREATE, self._on_create),
            (subjects.SUBMIT_REPORT, self._on_report),
            (subjects.SUBMIT_CANCEL, self._on_cancel),
        ):
            self._subs.append(
                await self._nc.subscribe(subject, queue=queue, cb=self._concurrently(handler))
            )
        self._subs.append(
            await self._nc.subscribe(
                subjects.TURN_UNDELIVERED, queue=queue, cb=self._concurrently(self._on_undelivered)
            )
        )
        # Every replica hears which outboxes were executed (no queue group).
        self._subs.append(
            await self._nc.subscribe(subjects.ORCHESTRATOR_EXECUTED, cb=self._on_executed)
        )
        # Reports of the turns this replica published come here first: it holds their
        # runs' states, so it answers without reading them (``TurnRequest.orchestrator``).
        self._subs.append(
            await self._nc.subscribe(
                subjects.report_subject(subjects.replica_token(self.replica)),
                cb=self._concurrently(self._on_report),
            )
        )
        self._poller = asyncio.get_running_loop().create_task(self._poll_pending())
        log.info("orchestrator.started", replica=self.replica)

    async def _poll_pending(self, every: float = 5.0) -> None:
        """Keep ``massgen_pending_turns{provider}`` current (queued, not yet taken)."""
        while not self._stopped:
            try:
                for info in await self._js.consumers_info(subjects.TURNS_STREAM):
                    name = info.name or ""
                    if name.startswith("worker-"):
                        PENDING.set(info.num_pending, provider=name.removeprefix("worker-"))
            except Exception as error:  # noqa: BLE001 - a gauge, not worth failing for
                log.debug("pending_turns.unavailable", error=repr(error))
            try:
                await asyncio.sleep(every)
            except asyncio.CancelledError:
                return

    async def stop(self) -> None:
        """Stop taking messages, let handlers in flight finish, close. Safe to call twice."""
        if self._stopped or self._nc is None:
            return
        self._stopped = True
        if self._poller is not None:
            self._poller.cancel()
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be gone
                pass
        self._runs.stop()
        if self._store is not None:
            await self._store.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await close_connection(self._nc)
        log.info("orchestrator.stopped", replica=self.replica)

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
        now = self._clock()
        state, commands = coordination.new_run(
            run_id,
            request.question,
            config,
            list(request.history),
            now,
            secrets.token_hex(16),
            previous_run_id=request.previous_run_id,
        )
        with tracing.start_trace("orchestrator.create", msg.headers, run_id=run_id):
            # The run's trace context ("" when not recorded): its turn requests carry it.
            state.traceparent = tracing.traceparent()
        state = self._with_outbox(state, commands, now)
        assert self._store is not None
        try:
            revision = await self._store.create(state)
        except Exception as error:  # noqa: BLE001 - the key exists (or NATS failed)
            await self._create_again(msg, run_id, request, error)
            return
        run = self._runs.put(state, revision)
        async with run.lock:
            await self._outbox.try_execute(run)
        self._runs.schedule(run)
        await self._respond(msg, RunAccepted(run_id=run_id))
        self.cpu_seconds += time.process_time() - started
        log.info("run.created", run_id=run_id, agents=len(config.agents))

    async def _create_again(
        self, msg: Msg, run_id: str, request: CreateRun, error: Exception
    ) -> None:
        """A create whose key exists: the same request retried (its reply was lost) is
        accepted again and finishes what the first attempt committed; anything else is
        refused."""
        assert self._store is not None
        try:
            stored = await self._store.latest(run_id) if request.run_id else None
        except Exception:  # noqa: BLE001 - NATS itself is failing: retryable
            stored = None
        if stored is None:
            # No such run: the write itself failed (e.g. a stream leader election).
            reply = ErrorReply(
                error=f"cannot create run {run_id} now ({error}); retry", code="internal"
            )
            await self._respond(msg, reply)
            return
        if stored.state.question != request.question:
            reply = ErrorReply(error=f"run id {run_id} is taken by another run")
            await self._respond(msg, reply)
            return
        run = self._runs.put(stored.state, stored.revision)
        async with run.lock:
            await self._outbox.try_execute(run)
        self._runs.schedule(run)
        await self._respond(msg, RunAccepted(run_id=run_id))

    async def _on_report(self, msg: Msg) -> None:
        started = time.process_time()
        try:
            report = WorkerReportAdapter.validate_json(msg.data)
        except ValidationError as error:
            await self._respond(msg, ErrorReply(error=f"bad worker report: {error}"))
            return
        # A span for the reports that carry their turn's trace (the worker sends it with
        # the ones worth a span: see its ``_UNTRACED_REPORTS``); none for the others. Its
        # parent, the worker's turn span, names the run and the turn.
        with tracing.span("orchestrator.report", msg.headers, report=report.kind):
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

    async def _on_undelivered(self, msg: Msg) -> None:
        """JetStream gave up on a turn request: every worker that took it died or stalled
        (e.g. a request that kills its worker). Fail the turn now, as a provider error
        would, instead of leaving the run to wait for the turn's timeout."""
        try:
            advisory = json.loads(msg.data)
            seq = int(advisory["stream_seq"])
        except (ValueError, KeyError, TypeError):
            return
        try:
            stored = await self._js.get_msg(subjects.TURNS_STREAM, seq)
        except NotFoundError:
            return  # acked after all, or already handled
        try:
            request = TurnRequest.model_validate_json(stored.data or b"")
        except ValidationError:
            request = None
        if request is not None:
            deliveries = advisory.get("deliveries", "several")
            log.warning("turn.undelivered", run_id=request.run_id, turn=request.turn_id)
            failed = TurnFailed(
                run_id=request.run_id, turn_id=request.turn_id, token=request.token,
                error=f"the turn was handed to workers {deliveries} times and none "
                "finished it (each worker died or stalled)",
            )  # fmt: skip
            await self._transition(request.run_id, failed, None)
        with contextlib.suppress(Exception):
            await self._js.delete_msg(subjects.TURNS_STREAM, seq)

    async def _on_executed(self, msg: Msg) -> None:
        # "<run> r<revision>"; the "r" keeps a replica of an older version (which sent
        # and read "<run> <seq>") from taking a revision for a sequence number.
        run_id, _, revision = msg.data.decode(errors="replace").partition(" r")
        run = self._runs.get(run_id)
        if run is None or not revision.isdigit():
            return
        was_pending = run.outbox_pending
        run.executed = max(run.executed, int(revision))
        if run.announced is not None:
            run.announced.set()
        if was_pending and not run.outbox_pending:
            self._runs.settle(run)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("orchestrator.handler_failed", error=repr(error))

    def _concurrently(self, handler: Any) -> Any:
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

    async def _transition(self, run_id: str, message: Any, reply_to: Msg | None) -> bool:
        """Apply one input to a run, persist, execute. Returns False if the run is unknown."""
        try:
            run = await self._runs.load(run_id)
        except Exception as error:  # noqa: BLE001 - NATS cannot say now: the sender retries
            log.warning("run.load_failed", run_id=run_id, error=repr(error))
            if reply_to is not None:
                with contextlib.suppress(Exception):
                    await self._respond(reply_to, _BUSY)
            return True
        if run is None:
            if reply_to is not None:
                log.debug("verdict.stale", run_id=run_id, reason="unknown run")
                await self._respond(reply_to, _STALE_UNKNOWN)
            return False
        try:
            async with run.lock:
                if run.stale:  # another replica wrote it since: read what it wrote
                    self.catch_ups += 1
                    await self._runs.refresh(run)
                if run.state is None:  # deleted meanwhile
                    self._runs.forget(run_id)
                    if reply_to is not None:
                        await self._respond(reply_to, _STALE_UNKNOWN)
                    return False
                await self._apply(run, message, reply_to)
        except Exception as error:  # noqa: BLE001 - NATS failing: the timer retries
            log.warning("run.transition_failed", run_id=run_id, input=getattr(message, "kind", "?"),
                        error=repr(error))  # fmt: skip
            if reply_to is not None:  # the sender retries now instead of timing out
                with contextlib.suppress(Exception):
                    await self._respond(reply_to, _BUSY)
        finally:
            self._runs.settle(run)
        return True

    async def _apply(self, run: CachedRun, message: Any, reply_to: Msg | None) -> None:
        assert self._store is not None
        if reply_to is not None and not coordination.holds(run.current, message):
            self.refusals += 1
            REFUSED.inc()
            log.warning(
                "report_refused", run_id=run.current.run_id, turn=message.turn_id,
                report=message.kind, reason="the turn's token does not match",
            )  # fmt: skip
        for attempt in range(self.settings.persist_retries):
            await self._outbox.wait_for_writer(run)
            await self._outbox.execute(run)
            base, base_revision = run.current, run.revision
            now = self._clock()
            state, commands = coordination.apply(base, message, now)
            try:
                if state == base and all(isinstance(c, ReplyVerdict) for c in commands):
                    # Nothing changes: reply only if this is still the latest state.
                    if reply_to is not None and commands:
                        latest = await self._store.latest_revision(base.run_id)
                        if latest is not None and latest != base_revision:
                            raise Conflict(base.run_id)
                    await self._reply(commands, reply_to, message, base_revision)
                    self._count(base, base, commands, message)
                    return
                state = self._with_outbox(state, commands, now, base.seq)
                revision = await self._store.update(state, base_revision)
            except Conflict:
                # Another replica wrote the run: load its state, then try again a random
                # moment later, so replicas racing on one run do not collide every round.
                await self._runs.refresh(run)
                await asyncio.sleep(random.uniform(0.0, 0.005 * (attempt + 1)))
                continue
            self._runs.adopt(run, state, revision)
            await self._outbox.execute(run)
            await self._reply(commands, reply_to, message, revision)
            self._count(base, state, commands, message)
            return
        log.error("run.persist_failed", run_id=run.current.run_id)
        if reply_to is not None:
            await self._respond(reply_to, _BUSY)

    @staticmethod
    def _count(base: RunState, state: RunState, commands: list[Command], message: Any) -> None:
        """Metrics of one committed transition."""
        for command in commands:
            if isinstance(command, ReplyVerdict):
                VERDICTS.inc(kind=getattr(message, "kind", "?"), status=command.verdict.status)
            elif isinstance(command, EmitEvent) and command.event.kind == "restart":
                RESTARTS.inc()
        if state.over and not base.over:
            RUNS.inc(status=state.status)
            RUN_SECONDS.observe(max(0.0, state.committed_at - state.created_at))

    def _with_outbox(
        self, state: RunState, commands: list[Command], now: float, seq: int = 0
    ) -> RunState:
        durable = [c for c in commands if not isinstance(c, ReplyVerdict)]
        return state.model_copy(
            update={"seq": seq + 1, "outbox": durable, "writer": self.replica, "committed_at": now}
        )

    async def _reply(
        self, commands: list[Command], reply_to: Msg | None, message: Any, revision: int
    ) -> None:
        for command in commands:
            if isinstance(command, ReplyVerdict) and reply_to is not None:
                if command.verdict.status == "stale":  # the worker drops the turn: say why
                    log.debug("verdict.stale", run_id=getattr(message, "run_id", None),
                             turn=getattr(message, "turn_id", None), report=message.kind,
                             revision=revision)  # fmt: skip
                await self._respond(reply_to, command.verdict)

    async def _respond(self, msg: Msg, reply: Any) -> None:
        # Not ``msg.respond``: nats-py copies the request's headers (its ``traceparent``)
        # into the reply, only for the requester to parse them again.
        if msg.reply and self._nc is not None:
            await self._nc.publish(msg.reply, reply.model_dump_json().encode())

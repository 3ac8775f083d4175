"""The worker's NATS adapter: pull turn requests, run them, relay events, report.

The only module of the worker that touches NATS. Per provider it binds the durable
pull consumer (``subjects.provider_consumer``) and runs a pull loop; a semaphore
bounds the turns running in this process. What happens to a turn request message:

- malformed → ``term`` (never redelivered) and logged;
- orchestrator says the turn is stale at TurnStarted → ``ack`` and skip;
- the turn ran to an end (accepted, stale, presented, failed-and-reported) → ``ack``;
- cancelled by a CancelTurn on the control subject → ``ack`` (the orchestrator asked);
- the orchestrator could not be reached, or the worker is stopping → ``nak`` so another
  worker takes it (a crashed worker's turn comes back after ``ack_wait``).

While a turn runs the message gets ``in_progress`` every ``ack_wait / 3``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import TYPE_CHECKING

import structlog
from massgen_kit import tracing
from massgen_kit.health import connect_options
from massgen_kit.jetstream import (
    close_connection,
    ensure_events_stream,
    ensure_provider_consumer,
    ensure_turns_stream,
)
from massgen_proto.events import Chunk, RunFinished, TokenUsage, trusted_event
from massgen_proto.ids import stream_tag
from massgen_proto.messages import (
    BackendSpec,
    CancelTurn,
    ErrorReply,
    ModelRetrying,
    OrchestratorReplyAdapter,
    TurnRequest,
    TurnStarted,
    Verdict,
    WorkerReport,
    WorkerReportAdapter,
)
from massgen_proto.providers import BACKENDS
from massgen_proto.subjects import (
    CONTROL_WILDCARD,
    PREFIX,
    SUBMIT_REPORT,
    TURNS_STREAM,
    events_subject,
    report_subject,
)
from pydantic import ValidationError

from .answer_checks import GatewayChecker
from .coalesce import Coalescing
from .file_search import FileSearchStores
from .gateway_tools import GatewayTools
from .llm import LiteLLMModel, Model
from .media_broker import MediaBroker
from .metrics import INFLIGHT, MODEL_ERRORS, TURNS, count_usage, error_class
from .model_calls import Report
from .pricing import price_of
from .rate_limit import RateLimiter
from .settings import WorkerSettings
from .timing import TimedModel
from .turn import RetryPolicy, StreamEnds, TurnOutcome, run_turn

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js import JetStreamContext
    from structlog.typing import FilteringBoundLogger

__all__ = ["OrchestratorUnavailable", "WorkerService"]

log = structlog.get_logger("massgen_worker")

_UNTRACED_REPORTS = frozenset({"turn_started", "turn_usage", "model_retrying"})
"""Bookkeeping reports, sent without the turn's ``traceparent`` so the orchestrator makes
no span for them: one each would be half a run's spans and say little (the turn's span
covers them)."""


class OrchestratorUnavailable(RuntimeError):
    """The orchestrator did not answer a report after every retry."""


class WorkerService:
    """Executes turns for a set of providers. ``start()`` then ``stop()``.

    Args:
        nats_url: NATS server URL(s), comma-separated.
        providers: provider names whose turns this worker pulls (``Backend.provider``).
        settings: see ``WorkerSettings``.
        model_factory: builds the model of a turn from its backend (``LiteLLMModel``).
    """

    def __init__(
        self,
        nats_url: str,
        providers: list[str],
        settings: WorkerSettings | None = None,
        *,
        model_factory: Callable[[BackendSpec], Model] = LiteLLMModel,
    ) -> None:
        if not providers:
            raise ValueError("a worker needs at least one provider to serve")
        self.nats_url = nats_url
        self.providers = list(dict.fromkeys(providers))
        self.settings = settings or WorkerSettings()
        self.model_factory = model_factory
        self.log = log.bind(worker=self.settings.worker_name)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subs: list[JetStreamContext.PullSubscription] = []
        self._control_sub: Subscription | None = None
        self._ends_sub: Subscription | None = None
        self.file_search = FileSearchStores()
        """The vector stores of file search, deleted as their runs end."""
        self._cleanups: set[asyncio.Task[None]] = set()
        self._pull_tasks: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._turns: dict[str, asyncio.Task[TurnOutcome]] = {}
        self._cancel_requested: set[str] = set()
        self._semaphore = asyncio.Semaphore(self.settings.concurrency)
        self._running = False
        self._stop_task: asyncio.Task[None] | None = None
        self._preload_task: asyncio.Task[ModuleType | None] | None = None
        self._stream_ends = StreamEnds()
        """Usage chunks read after the fact, shared by this worker's turns."""
        self.turns_done = 0
        """Turns this worker has finished and acknowledged (any outcome)."""

    # -- lifecycle ------------------------------------------------------------------

    @property
    def running_turns(self) -> list[str]:
        """Turn ids running in this process now."""
        return list(self._turns)

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up (readiness)."""
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> None:
        """Connect, make sure streams and consumers exist, and start pulling."""
        import nats

        if self._running or self._nc is not None:
            raise RuntimeError("WorkerService.start() called twice")
        s = self.settings
        if self.model_factory is LiteLLMModel:
            # Warm the model path now, not in turn one: the direct HTTP client, and litellm
            # (seconds of imports, in a thread) only for providers that need it.
            from .llm import apreload

            self._preload_task = asyncio.create_task(apreload(self.providers), name="model-preload")
        # Without a login (embedded) a one-provider worker still uses its user's prefix.
        user = f"worker-{self.providers[0]}" if len(self.providers) == 1 else "worker"
        self._nc = nc = await nats.connect(
            self.nats_url, name=f"massgen-worker {s.worker_name}", max_reconnect_attempts=-1,
            **connect_options(self.nats_url, user),
        )  # fmt: skip
        self._js = js = nc.jetstream()
        await ensure_turns_stream(js, s.stream_settings)
        await ensure_events_stream(js, s.stream_settings)
        self._control_sub = await nc.subscribe(CONTROL_WILDCARD, cb=self._on_control)
        # Run ends (the orchestrator's events only), to delete file search stores.
        ends = f"{PREFIX}.events.*.run"
        self._ends_sub = await nc.subscribe(ends, cb=self._on_run_event)
        self._running = True
        for provider in self.providers:
            durable = await ensure_provider_consumer(
                js, provider, ack_wait=s.ack_wait, max_deliver=s.max_deliver
            )
            sub = await js.pull_subscribe_bind(durable=durable, stream=TURNS_STREAM)
            self._subs.append(sub)
            rate = s.rate_limits.get(provider)
            limiter = RateLimiter(rate) if rate else None
            self._pull_tasks.append(
                asyncio.create_task(
                    self._pull_loop(provider, sub, limiter), name=f"pull-{provider}"
                )
            )
        if "max_tool_rounds" in s.model_fields_set:
            self.log.warning(
                "setting_deprecated",
                setting="max_tool_rounds",
                note="unused: turns are bounded by the turn request's max_tool_calls",
            )
        self.log.info("worker_started", providers=self.providers, concurrency=s.concurrency)

    async def stop(self) -> None:
        """Stop pulling, let running turns finish (``graceful_timeout``), cancel the rest.

        Idempotent: a second call waits for the first to finish.
        """
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._stop())
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        self._running = False
        if self._preload_task is not None:
            # A thread cannot be interrupted; wait for it so no task is left unawaited.
            await asyncio.gather(self._preload_task, return_exceptions=True)
        # A fetch is a long poll (``fetch_timeout``): cancel it instead of waiting it
        # out, then drop the subscriptions, so the server forgets the pending pull
        # (it skips requests nobody listens to) and turns handed back from here on
        # go to other workers at once.
        for task in self._pull_tasks:
            task.cancel()
        await asyncio.gather(*self._pull_tasks, return_exceptions=True)
        await self._release_pulls()
        if self._handlers:
            self.log.info("worker_stopping", running_turns=len(self._turns))
            _, pending = await asyncio.wait(
                set(self._handlers), timeout=self.settings.graceful_timeout
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*self._cleanups, return_exceptions=True)
        await self.file_search.close()
        if self._nc is not None:
            for sub in (self._control_sub, self._ends_sub):
                if self._nc.is_connected and sub is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(sub.unsubscribe(), 2.0)
            await close_connection(self._nc)
        self.log.info("worker_stopped", turns_done=self.turns_done)

    async def _release_pulls(self) -> None:
        """Unsubscribe the pull subscriptions; ``nak`` turns that reached a cancelled fetch."""
        subs, self._subs = self._subs, []
        for sub in subs:
            if self._nc is not None and self._nc.is_connected:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sub.unsubscribe(), 2.0)
            # nats-py keeps what arrived in the subscription's queue (no public accessor).
            queue = getattr(getattr(sub, "_sub", None), "_pending_queue", None)
            while queue is not None and not queue.empty():
                msg = queue.get_nowait()
                if msg.headers and msg.headers.get("Status"):
                    continue  # the server's end-of-request notice, not a turn
                with contextlib.suppress(Exception):
                    await msg.nak()

    # -- pulling --------------------------------------------------------------------

    async def _pull_loop(
        self, provider: str, sub: JetStreamContext.PullSubscription, limiter: RateLimiter | None
    ) -> None:
        import nats.errors

        while self._running:
            await self._semaphore.acquire()
            handed_off = False
            try:
                if not self._running:
                    break
                if limiter is not None:
                    await limiter.wait()
                try:
                    msgs = await sub.fetch(1, timeout=self.settings.fetch_timeout)
                except nats.errors.TimeoutError:
                    continue
                except Exception as error:
                    if not self._running:
                        break
                    self.log.warning("pull_failed", provider=provider, error=repr(error))
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    task = asyncio.create_task(self._handle(provider, msg))
                    self._handlers.add(task)
                    # The handler's done callback releases this permit.
                    task.add_done_callback(self._handler_done)
                    handed_off = True
            finally:
                if not handed_off:
                    self._semaphore.release()

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        self._semaphore.release()
        if not task.cancelled() and (error := task.exception()) is not None:
            self.log.error("turn_handler_crashed", error=repr(error))

    # -- control --------------------------------------------------------------------

    async def _on_run_event(self, msg: Msg) -> None:
        """A run with file search stores here has finished: delete them."""
        run_id = msg.subject.split(".")[-2]
        if run_id not in self.file_search.runs():
            return  # most events: a run this worker keeps nothing for
        if isinstance(trusted_event(msg.subject, msg.data), RunFinished):
            task = asyncio.create_task(self.file_search.close_run(run_id))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)

    async def _on_control(self, msg: Msg) -> None:
        try:
            cancel = CancelTurn.model_validate_json(msg.data)
        except ValidationError:
            self.log.warning("control_message_malformed", subject=msg.subject, size=len(msg.data))
            return
        task = self._turns.get(cancel.turn_id)
        if task is not None and not task.done():
            self._cancel_requested.add(cancel.turn_id)
            task.cancel()
            self.log.info(
                "turn_cancel_requested",
                run_id=cancel.run_id,
                turn=cancel.turn_id,
                reason=cancel.reason,
            )

    # -- one message ----------------------------------------------------------------

    async def _handle(self, provider: str, msg: Msg) -> None:
        try:
            request = TurnRequest.model_validate_json(msg.data)
        except ValidationError as error:
            self.log.error(
                "turn_request_malformed",
                provider=provider,
                size=len(msg.data),
                errors=error.error_count(),
            )
            await msg.term()
            return
        delivery = msg.metadata.num_delivered if msg.metadata else 1
        await self._handle_turn(provider, msg, request, delivery)

    async def _handle_turn(
        self, provider: str, msg: Msg, request: TurnRequest, delivery: int
    ) -> None:
        tlog = self.log.bind(
            run_id=request.run_id, agent=request.agent_id, turn=request.turn_id, provider=provider
        )
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        INFLIGHT.add(1, provider=provider)
        try:
            if await self._claim(request, delivery, tlog):
                # The turn's span starts once it is really taken (a stale turn gets none).
                # Few attributes (each costs on every span): the run id is the trace's,
                # the turn id names the agent's label, the worker's service the provider;
                # a redelivery says so, a first delivery carries no attribute.
                with tracing.span(
                    "turn", msg.headers, agent=request.agent_id, turn=request.turn_id,
                    phase=request.phase, delivery=delivery if delivery > 1 else None,
                ):  # fmt: skip
                    tlog.info("turn_started", phase=request.phase, delivery=delivery,
                              messages=len(request.messages), tools=len(request.tools))  # fmt: skip
                    outcome = await self._run(request, tlog)
                if outcome is not None:
                    tlog.info("turn_finished", status=outcome.status, attempts=outcome.attempts,
                              model_calls=outcome.model_calls, error=outcome.error)  # fmt: skip
                    TURNS.inc(provider=provider, phase=request.phase, outcome=outcome.status)
                    self.turns_done += 1
            await msg.ack()  # done, skipped as stale, or cancelled by the orchestrator
        except asyncio.CancelledError:
            # Shutdown: hand the turn back so another worker takes it at once.
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak())
            tlog.info("turn_handed_back")
            raise
        except Exception as error:
            tlog.error("turn_aborted", error=repr(error))
            with contextlib.suppress(Exception):
                await msg.nak(delay=min(5.0, self.settings.ack_wait))
        finally:
            INFLIGHT.add(-1, provider=provider)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _claim(self, request: TurnRequest, delivery: int, tlog: FilteringBoundLogger) -> bool:
        """Tell the orchestrator this worker starts the turn; False when it says the turn
        is stale (another worker has it, or the run moved on): then it is skipped."""
        started = TurnStarted(
            run_id=request.run_id, turn_id=request.turn_id, token=request.token,
            worker=self.settings.worker_name, delivery=delivery,
        )  # fmt: skip
        verdict = await self._report(started, request.orchestrator)
        if verdict.status == "stale":
            tlog.info("turn_skipped_stale", delivery=delivery)
            return False
        return True

    def _turn(
        self, request: TurnRequest, tlog: FilteringBoundLogger
    ) -> Coroutine[None, None, TurnOutcome]:
        """The turn, not started yet, with its seams: events out, reports in."""
        s = self.settings
        subject = events_subject(request.run_id, "stream")
        nc = self._nc
        if nc is None:
            raise RuntimeError("the worker is not started")

        spec = BACKENDS.get(request.backend.type)
        provider = spec.provider if spec else request.backend.type
        model = request.backend.model

        tag = stream_tag(request.token)

        async def emit(event: Chunk | TokenUsage) -> None:
            event = event.model_copy(update={"tag": tag})  # readers drop untagged ones
            if isinstance(event, TokenUsage):
                count_usage(event, provider, model)
            await nc.publish(subject, event.model_dump_json().encode())

        async def submit(report: Report) -> Verdict:
            if isinstance(report, ModelRetrying):
                # ``class`` is a keyword: the label goes in as a mapping.
                MODEL_ERRORS.inc(1.0, **{"provider": provider, "class": error_class(report.status)})
            return await self._report(report, request.orchestrator)

        return run_turn(
            request,
            TimedModel(self.model_factory(request.backend), provider, model),
            submit,
            emit,
            policy=RetryPolicy(
                retries=s.provider_retries,
                base_delay=s.retry_base_delay,
                max_delay=s.retry_max_delay,
                max_tool_result_chars=s.max_tool_result_chars,
            ),
            tools=(
                MediaBroker(GatewayTools(nc, request, s, tlog), request, self.file_search)
                if s.use_gateway and request.uses_tools
                else None
            ),
            stream_ends=self._stream_ends,
            coalescing=Coalescing(s.chunk_flush_seconds, s.chunk_flush_chars),
            price=price_of(request.backend),
            checker=(
                GatewayChecker(nc, request, s.gateway_silence, tlog)
                if s.use_gateway and request.examples
                else None
            ),
        )

    async def _run(self, request: TurnRequest, tlog: FilteringBoundLogger) -> TurnOutcome | None:
        """Run the turn as its own task; None when a CancelTurn stopped it."""
        task = asyncio.create_task(self._turn(request, tlog), name=f"turn-{request.turn_id}")
        self._turns[request.turn_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if request.turn_id in self._cancel_requested and not (
                current is not None and current.cancelling()
            ):
                tlog.info("turn_cancelled")
                return None
            # This handler is being cancelled (shutdown): end the turn before leaving.
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            self._turns.pop(request.turn_id, None)
            self._cancel_requested.discard(request.turn_id)

    async def _heartbeat(self, msg: Msg) -> None:
        interval = self.settings.ack_wait / 3
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _report(self, report: WorkerReport, replica: str = "") -> Verdict:
        """Send a report to the orchestrator and return its verdict (retrying timeouts).

        It goes first to ``replica``, the one that published the turn and holds the
        run's state; when that one does not answer (gone, or stuck), to any replica.
        """
        import nats.errors

        s = self.settings
        try:
            subject = report_subject(replica)
        except ValueError:  # not a name a replica could have: any replica then
            subject = SUBMIT_REPORT
        data = WorkerReportAdapter.dump_json(report)
        traced = None if report.kind in _UNTRACED_REPORTS else tracing.headers()
        # Events published so far reach the server before this request: one connection
        # delivers in order. (No ``flush`` here: a flush cancelled mid-way leaves nats-py
        # a cancelled PONG waiter, and the next PONG kills the connection's read loop.)
        last: Exception | str | None = None
        for attempt in range(s.request_retries + 1):
            try:
                if self._nc is None:
                    raise OrchestratorUnavailable("not connected")
                reply = await self._nc.request(
                    subject, data, timeout=s.request_timeout, headers=traced
                )
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as error:
                last = error
                if subject != SUBMIT_REPORT:
                    subject = SUBMIT_REPORT  # that replica is gone: any other will do
                    if isinstance(error, nats.errors.NoRespondersError):
                        continue  # no one listened: nothing to wait for
            else:
                parsed = OrchestratorReplyAdapter.validate_json(reply.data)
                if not (isinstance(parsed, ErrorReply) and parsed.code == "internal"):
                    break
                # The orchestrator could not commit it now (contention, a NATS failover):
                # the same report again is safe, and dropping it would strand the turn.
                last = parsed.error
            if attempt < s.request_retries:
                await asyncio.sleep(min(2.0, 0.2 * 2**attempt) * (0.5 + random.random()))
        else:
            raise OrchestratorUnavailable(
                f"no reply to {report.kind} after {s.request_retries + 1} tries: {last!r}"
            )
        if isinstance(parsed, ErrorReply):
            # The orchestrator refuses the report (unknown run or turn): nothing to do.
            self.log.warning("report_refused", kind=report.kind, error=parsed.error)
            return Verdict(status="stale", message=parsed.error)
        if not isinstance(parsed, Verdict):
            raise OrchestratorUnavailable(f"unexpected reply {parsed.kind!r} to {report.kind}")
        return parsed

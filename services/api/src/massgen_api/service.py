"""The API's NATS adapter: the only module of massgen_api that touches NATS.

- creates and cancels runs by request/reply to the orchestrator;
- keeps the API's run index and sessions in two KV buckets (compare-and-set updates);
- replays a run's events from the events stream with an ordered push consumer
  (one per reader, starting at a stream sequence) and follows them live;
- watches every run event (core subscription) for ``/metrics`` and the index status;
- reads the work-queue consumers' pending counts (queue depth per provider);
- asks the mcp-gateway for a run's media files (``run_files``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import nats
import structlog
from massgen_kit import tracing
from massgen_kit.health import connect_options
from massgen_kit.jetstream import (
    OrderedFollower,
    bucket_keys,
    close_connection,
    ensure_bucket,
    ensure_events_stream,
    ensure_runs_bucket,
    ensure_turns_stream,
)
from massgen_kit.keepalive import ResponderSilent, request_with_keepalive
from massgen_proto import subjects
from massgen_proto.events import TERMINAL_STATUSES, RunEventAdapter, RunFinished
from massgen_proto.media import FilesReply, FilesReplyAdapter, RunFileRequest, RunFilesRequest
from massgen_proto.messages import (
    CancelRun,
    CreateRun,
    ErrorReply,
    OrchestratorReply,
    OrchestratorReplyAdapter,
)
from massgen_proto.record import RunRecord
from massgen_proto.summary import RunSummary, apply_event
from massgen_proto.trust import StreamGate
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from .metrics import Metrics
from .records import RunIndexEntry, SessionRecord
from .settings import ApiSettings
from .sse import event_kind
from .usage import TenantUsage

__all__ = ["Backend", "GatewayUnavailable", "OrchestratorUnavailable"]

log = structlog.get_logger("api")


def _without_credentials(url: str) -> str:
    """``url`` (one or comma-separated servers) with any ``user:password@`` removed."""
    return ",".join(
        urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
        for parts in (urlsplit(server.strip()) for server in url.split(","))
    )


_SUMMARY_CACHE = 2048


_Handle = TypeVar("_Handle")


def _started(handle: _Handle | None) -> _Handle:
    """A NATS handle of a started backend (raises when ``start`` has not run)."""
    if handle is None:
        raise RuntimeError("the API backend is not started (no NATS connection)")
    return handle


class OrchestratorUnavailable(RuntimeError):
    """No orchestrator answered in time (none running, or overloaded)."""


class GatewayUnavailable(RuntimeError):
    """No tool gateway answered (it holds the runs' files)."""


class IdempotencyConflict(RuntimeError):
    """An idempotency key already names a run of another request."""


class Backend:
    """One API process's NATS connection and everything it does with it."""

    def __init__(self, settings: ApiSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._runs_kv: KeyValue | None = None
        self._index_kv: KeyValue | None = None
        self._sessions_kv: KeyValue | None = None
        self._watch: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished: OrderedDict[str, RunSummary] = OrderedDict()
        """Summaries of finished runs (they never change again)."""
        self._gate = StreamGate()
        """Every run's turns, for the events counted in metrics (token usage)."""
        self.usage = TenantUsage(settings.daily_limits)

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, make sure streams and buckets exist, seed metrics, watch events."""
        url = self.settings.nats_connect_url()
        self._nc = await nats.connect(
            url, name="massgen-api", max_reconnect_attempts=-1,
            **connect_options(url, "api"),
        )  # fmt: skip
        self._js = self._nc.jetstream()
        stream_settings = self.settings.stream_settings()
        await ensure_turns_stream(self._jetstream, stream_settings)
        await ensure_events_stream(self._jetstream, stream_settings)
        self._runs_kv = await ensure_runs_bucket(self._jetstream, stream_settings)
        self._index_kv = await self._bucket(subjects.API_RUNS_BUCKET)
        self._sessions_kv = await self._bucket(subjects.SESSIONS_BUCKET)
        if self.usage.limits.any:
            await self.usage.start(self._jetstream, stream_settings)
        for record in await self.all_runs():
            self.metrics.run_status[record.run_id] = record.status
        self._watch = await self._nc.subscribe(subjects.EVENTS_WILDCARD, cb=self._on_event)
        log.info(
            "api.nats_connected", url=_without_credentials(self.settings.nats_url),
            user=self.settings.nats_user,
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop watching and close the connection. Safe to call twice."""
        if self._nc is None:
            return
        nc, self._nc = self._nc, None
        await self.usage.stop()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await close_connection(nc)

    async def _bucket(self, name: str) -> KeyValue:
        return await ensure_bucket(self._jetstream, name, self.settings.stream_settings())

    # Each handle exists once ``start`` has run; before that, using one is a bug.
    @property
    def _client(self) -> Client:
        return _started(self._nc)

    @property
    def _jetstream(self) -> JetStreamContext:
        return _started(self._js)

    @property
    def _runs_bucket(self) -> KeyValue:
        return _started(self._runs_kv)

    @property
    def _index_bucket(self) -> KeyValue:
        return _started(self._index_kv)

    @property
    def _sessions_bucket(self) -> KeyValue:
        return _started(self._sessions_kv)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def ready(self) -> tuple[bool, str]:
        """(ready, why not): connected and the streams exist."""
        if not self.connected:
            return False, "not connected to NATS"
        try:
            for stream in (subjects.EVENTS_STREAM, subjects.TURNS_STREAM):
                await self._jetstream.stream_info(stream)
        except Exception as error:
            return False, f"stream check failed: {error}"
        return True, "ok"

    # -- orchestrator requests ------------------------------------------------------------

    async def _request(self, subject: str, payload: bytes) -> OrchestratorReply:
        try:
            reply = await self._client.request(
                subject, payload, timeout=self.settings.request_timeout,
                headers=tracing.headers(),  # the run's trace starts here (when tracing is on)
            )  # fmt: skip
        except (TimeoutError, NoRespondersError, NatsTimeout) as error:
            raise OrchestratorUnavailable(
                f"no orchestrator answered on {subject}: {type(error).__name__}"
            ) from None
        return OrchestratorReplyAdapter.validate_json(reply.data)

    async def create_run(
        self, request: CreateRun, record: RunIndexEntry, *, keyed: bool = False
    ) -> OrchestratorReply:
        """Index the run for its tenant, then ask the orchestrator to start it.

        The index entry is written first so the run's creator can read it as soon as
        it exists; it is removed again when the orchestrator refuses. With ``keyed``
        (the run id comes from the client's idempotency key) a retry finds the entry of
        its first attempt and asks the orchestrator again (its create is idempotent),
        and an attempt whose outcome is unknown keeps the entry for that retry.

        Raises:
            IdempotencyConflict: the key was used for another request.
        """
        try:
            await self._index_bucket.create(record.run_id, record.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            existing = await self.get_record(record.run_id) if keyed else None
            if existing is None or (existing.tenant, existing.question) != (
                record.tenant, record.question,
            ):  # fmt: skip
                raise IdempotencyConflict(record.run_id) from None
        try:
            with tracing.start_trace("run.create", run_id=record.run_id, tenant=record.tenant):
                payload = request.model_dump_json().encode()
                reply = await self._request(subjects.SUBMIT_CREATE, payload)
        except BaseException:
            if not keyed:
                await self._index_bucket.delete(record.run_id)
            raise
        if isinstance(reply, ErrorReply):
            await self._index_bucket.delete(record.run_id)
        else:
            self.metrics.runs_created += 1
            self.metrics.run_status.setdefault(record.run_id, "running")
        return reply

    async def cancel_run(self, run_id: str, reason: str) -> OrchestratorReply:
        request = CancelRun(run_id=run_id, reason=reason)
        return await self._request(subjects.SUBMIT_CANCEL, request.model_dump_json().encode())

    async def run_files(self, request: RunFileRequest | RunFilesRequest) -> FilesReply:
        """Ask the gateway for a run's media files or a chunk of one (``media``).

        Raises:
            GatewayUnavailable: no gateway answered.
        """
        try:
            data = await request_with_keepalive(
                self._client, subjects.GATEWAY_RUN_FILES, request.model_dump_json().encode(),
                self.settings.request_timeout, headers=tracing.headers(),
            )  # fmt: skip
        except (TimeoutError, NoRespondersError, NatsTimeout, ResponderSilent) as error:
            raise GatewayUnavailable(f"no tool gateway answered: {type(error).__name__}") from None
        return FilesReplyAdapter.validate_json(data)

    # -- run index ------------------------------------------------------------------------

    async def get_record(self, run_id: str) -> RunIndexEntry | None:
        try:
            entry = await self._index_bucket.get(run_id)
        except (KeyNotFoundError, ValueError):
            return None
        if entry.value is None:
            return None
        return RunIndexEntry.model_validate_json(entry.value)

    async def all_runs(self) -> list[RunIndexEntry]:
        """Every run in the index (newest first)."""
        keys = await bucket_keys(self._jetstream, subjects.API_RUNS_BUCKET)
        records = await asyncio.gather(*(self.get_record(key) for key in keys))
        found = [r for r in records if r is not None]
        found.sort(key=lambda r: r.created_at, reverse=True)
        return found

    async def _on_finished(self, event: RunFinished) -> None:
        """Keep the index entry's status, and count the run against its tenant's day."""
        run_id, status = event.run_id, event.status
        for _ in range(3):
            try:
                entry = await self._index_bucket.get(run_id)
            except (KeyNotFoundError, ValueError):
                return  # not a run of this API (e.g. the CLI's own)
            if entry.value is None:
                return  # deleted meanwhile
            record = RunIndexEntry.model_validate_json(entry.value)
            if self.usage.limits.any:
                await self.usage.record(
                    record.tenant, run_id, event.tokens, event.cost_usd, event.ts
                )
            if record.status == status:
                return
            record.status = status
            try:
                await self._index_bucket.update(
                    run_id, record.model_dump_json().encode(), last=entry.revision
                )
                return
            except KeyWrongLastSequenceError:
                continue

    async def orchestrator_status(self, run_id: str) -> str | None:
        """The run's status as the orchestrator last wrote it (None: unknown run)."""
        try:
            entry = await self._runs_bucket.get(run_id)
        except (KeyNotFoundError, ValueError):
            return None
        try:
            return RunRecord.model_validate_json(entry.value or b"").status
        except ValidationError:
            return None

    # -- events -----------------------------------------------------------------------------

    async def _on_event(self, msg) -> None:
        data = msg.data
        if b'"kind":"chunk"' in data:  # the bulk of the traffic; nothing to count
            return
        event = self._gate.admit(msg.subject, data)
        if event is None:
            return  # malformed, a kind its publisher may not send, or a forged token count
        self.metrics.observe(event)
        if event.kind == "run_finished":
            task = asyncio.get_running_loop().create_task(self._on_finished(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def last_sequence(self, run_id: str) -> tuple[int, str] | None:
        """(stream sequence, kind) of the run's latest orchestrator event (its status,
        answers, votes), or None when it has none."""
        try:
            msg = await self._jetstream.get_last_msg(
                subjects.EVENTS_STREAM, subjects.events_subject(run_id, "run")
            )
        except NotFoundError:
            return None
        if msg.seq is None:
            return None  # a stored message always has one; nats-py's type allows none
        return msg.seq, event_kind(msg.data or b"")

    async def follow(
        self, run_id: str, after: int = 0, heartbeat: float | None = None
    ) -> AsyncGenerator[tuple[int, bytes] | None, None]:
        """Yield ``(stream sequence, event JSON)`` from after ``after`` on, live, forever.

        Only events whose publisher is entitled to them are yielded (see
        ``events.entitled``). Yields None after ``heartbeat`` seconds without an event
        (keep-alive). The caller stops iterating (e.g. after ``run_finished``); the
        consumer is removed.
        """
        from nats.js.api import ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
            # Short: a consumer left by a client that went away must not pile up (each
            # GET of a running run replays through one; the server caps their number).
            inactive_threshold=5.0,
        )
        gate = StreamGate()
        if after:
            await self._learn_turns(gate, run_id, after)
        # Checked every few seconds while idle: a consumer lost with its NATS node is
        # replaced (resuming after the last event sent) instead of hanging the stream.
        follower = OrderedFollower(
            self._jetstream, subjects.EVENTS_STREAM, subjects.events_filter(run_id), config
        )
        await follower.start()
        wait = min(heartbeat or 3600.0, 3.0)
        idle = 0.0
        try:
            while True:
                msg = await follower.next(timeout=wait)
                if msg is None:
                    idle += wait
                    if heartbeat and idle >= heartbeat:
                        idle = 0.0
                        yield None
                    continue
                idle = 0.0
                if not gate.allows(msg.subject, msg.data, event_kind(msg.data)):
                    continue  # e.g. a final_answer or a chunk a worker forged
                yield msg.metadata.sequence.stream, msg.data
        finally:
            await follower.close()

    async def _learn_turns(self, gate: StreamGate, run_id: str, after: int) -> None:
        """Show ``gate`` the run's turns announced up to stream sequence ``after`` (a
        reader resuming there still needs them to check the chunks that follow)."""
        from nats.js.api import ConsumerConfig

        if await self.last_sequence(run_id) is None:
            return
        sub = await self._jetstream.subscribe(
            subjects.events_subject(run_id, "run"),
            stream=subjects.EVENTS_STREAM,
            ordered_consumer=True,
            config=ConsumerConfig(inactive_threshold=5.0),
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=5.0)
                if msg.metadata.sequence.stream > after:
                    return
                if event_kind(msg.data) == "turn_started":
                    gate.admit(msg.subject, msg.data)
                if not msg.metadata.num_pending:
                    return
        except NatsTimeout:
            return
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def summary(self, run_id: str) -> RunSummary | None:
        """Fold the run's events so far (cached once the run is over)."""
        cached = self._finished.get(run_id)
        if cached is not None:
            self._finished.move_to_end(run_id)
            return cached
        last = await self.last_sequence(run_id)
        if last is None:
            return None
        last_seq, _ = last
        summary = RunSummary(run_id=run_id)
        agen = self.follow(run_id)
        try:
            async for item in agen:
                if item is None:
                    continue
                seq, data = item
                apply_event(summary, RunEventAdapter.validate_json(data))
                if seq >= last_seq:
                    break
        finally:
            await agen.aclose()
        if summary.status in TERMINAL_STATUSES:
            self._finished[run_id] = summary
            while len(self._finished) > _SUMMARY_CACHE:
                self._finished.popitem(last=False)
        return summary

    # -- sessions -----------------------------------------------------------------------------

    async def create_session(self, record: SessionRecord) -> None:
        await self._sessions_bucket.create(record.id, record.model_dump_json().encode())

    async def get_session(self, session_id: str) -> tuple[SessionRecord, int] | None:
        """The session and its KV revision (for a compare-and-set update)."""
        try:
            entry = await self._sessions_bucket.get(session_id)
        except (KeyNotFoundError, ValueError):
            return None
        if entry.value is None or entry.revision is None:
            return None
        return SessionRecord.model_validate_json(entry.value), entry.revision

    async def update_session(self, record: SessionRecord, revision: int) -> bool:
        """Write ``record`` if nobody changed it since ``revision``; False otherwise."""
        try:
            await self._sessions_bucket.update(
                record.id, record.model_dump_json().encode(), last=revision
            )
        except KeyWrongLastSequenceError:
            return False
        return True

    # -- queue depth ----------------------------------------------------------------------------

    async def queue_depth(self) -> dict[str, tuple[int, int]]:
        """Provider -> (pending, in flight) of each ``worker-<provider>`` consumer."""
        try:
            infos = await self._jetstream.consumers_info(subjects.TURNS_STREAM)
        except Exception:
            return {}
        depth: dict[str, tuple[int, int]] = {}
        for info in infos:
            name = info.name or ""
            if name.startswith("worker-"):
                depth[name.removeprefix("worker-")] = (
                    int(info.num_pending or 0),
                    int(info.num_ack_pending or 0),
                )
        return depth


def now() -> float:
    """Epoch seconds (one place, so tests could pin it)."""
    return time.time()

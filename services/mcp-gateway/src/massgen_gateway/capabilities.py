"""Which turns may use the gateway now: every served run's turn capabilities, cached.

A tool request must carry its turn's token (``capability``). The capabilities of the runs
this replica serves are kept current by a watch of the runs bucket; a request the cache
refuses is asked again against the run's latest state, read from the stream leader, so a
valid token is never refused for want of freshness. A request that may change the
agent's files (a tool call, a file write) is confirmed by a leader read even when the
cache allows it: the watch delivers a write some milliseconds after it is committed (more
under load), and in that time a replaced turn's worker could still write into the
workspace its successor now owns. A leader read costs about a millisecond, small beside
any tool's own work. Tool lists, file reads and answer checks change nothing and are
served from the cache. After a reconnect, or when the watch had to be replaced, the
cache is dropped and every decision is confirmed for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from massgen_kit.jetstream import NO_MESSAGE, OrderedFollower
from massgen_proto import subjects
from massgen_proto.media import FileReadRequest, FileWriteRequest
from massgen_proto.record import RunRecord
from massgen_proto.tools import CheckRequest, ToolCallRequest, ToolListRequest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError

from . import capability

__all__ = ["DISTRUST_AFTER_RECONNECT", "MAX_CACHED_RUNS", "Capabilities", "CapabilityRequest"]

CapabilityRequest = (
    ToolListRequest | ToolCallRequest | CheckRequest | FileReadRequest | FileWriteRequest
)
"""A request that acts for one agent's turn and must carry that turn's token."""
_CHANGES_FILES = (ToolCallRequest, FileWriteRequest)
"""Requests confirmed against the leader even when the cache allows them."""

log = structlog.get_logger("gateway")

MAX_CACHED_RUNS = 4096
"""Run capabilities kept in memory (oldest dropped first; a dropped run is re-read)."""
DISTRUST_AFTER_RECONNECT = 30.0
"""Seconds after a NATS reconnect during which every request is checked against a leader
read: the watch may have missed writes until its consumer is re-created (nats-py does
that after two missed heartbeats, ~10 s)."""

_RUNS_STREAM = f"KV_{subjects.RUNS_BUCKET}"
_RUNS_KEY = f"$KV.{subjects.RUNS_BUCKET}."


class Capabilities:
    """The turn capabilities of the runs one gateway replica serves.

    Args:
        js: the connection's JetStream context, when connected.
    """

    def __init__(self, js: Callable[[], JetStreamContext]) -> None:
        self._js = js
        self.caps: dict[str, capability.RunCapabilities] = {}
        """Capabilities of the runs this replica served, kept current by the watch."""
        self.fresh: dict[str, RunRecord] = {}
        """Run states just read for a capability check, for the service to take its config."""
        self._reading: dict[str, int] = {}
        """Runs with a leader read in flight (their writes are cached meanwhile)."""
        self.watch: OrderedFollower | None = None
        self.watch_task: asyncio.Task[None] | None = None
        self._distrust_until = 0.0
        """Until then (monotonic) the cache may lag the bucket: confirm every decision."""

    async def stop(self) -> None:
        if self.watch_task is not None:
            self.watch_task.cancel()
        if self.watch is not None:
            await self.watch.close()

    async def start(self) -> None:
        """Follow every later write to the runs bucket: cached capabilities follow their
        run's turns. A watch that had to be replaced (its NATS node died) may have
        missed writes, so the cache is dropped then, as after a reconnect."""
        from nats.js.api import ConsumerConfig, DeliverPolicy

        start = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        watch = OrderedFollower(self._js(), _RUNS_STREAM, _RUNS_KEY + ">", start)
        self.watch = await watch.start()
        self.watch_task = asyncio.get_running_loop().create_task(self._follow(self.watch))

    async def _follow(self, watch: OrderedFollower) -> None:
        resumes = 0
        while True:
            msg = await watch.next(timeout=2.0)
            if watch.resumes != resumes:
                resumes = watch.resumes
                self.distrust()
            if msg is not None:
                await self._on_write(msg)  # never raises: a bad entry is forgotten

    async def _on_write(self, msg: Msg) -> None:
        run_id = msg.subject[len(_RUNS_KEY) :]
        if run_id not in self.caps and run_id not in self._reading:
            return  # a run this replica has not served: not worth parsing
        operation = msg.headers.get("KV-Operation") if msg.headers else None
        if operation in ("DEL", "PURGE") or not msg.data:
            self.caps.pop(run_id, None)
            return
        try:
            self.remember(RunRecord.model_validate_json(msg.data), msg.metadata.sequence.stream)
        except Exception as error:  # noqa: BLE001 - a bad entry: forget the run, re-read later
            self.caps.pop(run_id, None)
            log.warning("run_state_unreadable", run_id=run_id, error=repr(error))

    def distrust(self) -> None:
        # Writes may have been missed while the watch was down: trust no cached turn.
        self.caps.clear()
        self._distrust_until = time.monotonic() + DISTRUST_AFTER_RECONNECT

    def remember(self, record: RunRecord, revision: int) -> capability.RunCapabilities:
        """Cache the capabilities of a run state unless a newer revision is cached."""
        caps = capability.RunCapabilities.from_record(record, revision)
        cached = self.caps.get(caps.run_id)
        if cached is not None and cached.revision > revision:
            return cached
        self.caps.pop(caps.run_id, None)  # re-insert: most recently used last
        self.caps[caps.run_id] = caps
        while len(self.caps) > MAX_CACHED_RUNS:
            self.caps.pop(next(iter(self.caps)))
        return caps

    async def read_run(self, run_id: str) -> tuple[RunRecord, int] | None:
        """The run's latest committed state and revision, read from the stream leader
        (not a direct get, which a lagging follower may answer). None: no such run."""
        from nats.js.errors import NotFoundError

        try:
            subjects.validate_token(run_id, "run id")
        except ValueError:
            return None
        # A write the watch delivers while this read is in flight is cached too (the
        # newer revision wins), so a read answered just before a write cannot leave the
        # cache behind it.
        self._reading[run_id] = self._reading.get(run_id, 0) + 1
        try:
            raw = await self._js().get_last_msg(_RUNS_STREAM, _RUNS_KEY + run_id)
        except NotFoundError as error:
            if error.err_code == NO_MESSAGE:
                return None
            raise  # not "no such run": the stream is not there yet (a node joining)
        finally:
            if self._reading[run_id] == 1:
                del self._reading[run_id]
            else:
                self._reading[run_id] -= 1
        if raw.headers and raw.headers.get("KV-Operation") in ("DEL", "PURGE"):
            return None
        if not raw.data:
            return None
        try:
            record = RunRecord.model_validate_json(raw.data)
        except ValidationError as error:
            log.warning("run_state_unreadable", run_id=run_id, errors=error.error_count())
            return None
        if record.run_id != run_id or raw.seq is None:
            return None
        return record, raw.seq

    async def refusal(
        self,
        request: CapabilityRequest,
        served: Callable[[str], bool],
    ) -> str | None:
        """Why ``request`` may not act on its run (None: it may).

        The cached capabilities answer first; when they say no, the run's latest state
        is read from the stream leader and asked again (the request's turn may be newer
        than the cache), so a valid token is never refused for want of freshness. A
        request that may change files, and right after a reconnect every request, is
        asked against a leader read whatever the cache says.
        """

        def ask(caps: capability.RunCapabilities | None) -> str | None:
            return capability.check(
                caps, agent_id=request.agent_id, label=request.label, phase=request.phase,
                turn_id=request.turn_id, token=request.token,
            )  # fmt: skip

        reason = ask(self.caps.get(request.run_id))
        confirm = isinstance(request, _CHANGES_FILES) or time.monotonic() < self._distrust_until
        if reason is None and not confirm:
            return None
        latest = await self.read_run(request.run_id)
        if latest is None:
            return "unknown_run"
        record, revision = latest
        caps = self.remember(record, revision)
        reason = ask(caps)
        if reason is None and not served(request.run_id):
            self.fresh[request.run_id] = record  # the service takes the config from here
        return reason

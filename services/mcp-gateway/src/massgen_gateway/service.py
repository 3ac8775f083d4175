"""The gateway's NATS adapter: the only module here that touches NATS.

- ``GATEWAY_TOOLS_LIST`` / ``GATEWAY_TOOLS_CALL`` / ``GATEWAY_CLOSE`` (queue group
  ``mcp-gateway``): request/reply, each message handled in its own task so a slow tool
  never holds up another agent's call.
- A run's config comes from the orchestrator's runs bucket (``RunState.config``) the
  first time the run is named, so the gateway needs no copy of it in any message.
- Run events (``massgen.events.*``): ``answer_accepted`` snapshots the agent's
  workspace under its label, ``consensus`` records the winner, ``run_finished`` copies
  the winner's workspace to the run's ``final_workspace`` (and the configured final
  folder) and closes the run's MCP sessions.
- A run that continues a session (``RunRecord.previous_run_id``) gets the previous
  run's ``final_workspace`` as its agents' starting files (``workspace.seed_workspace``),
  waiting for that run's final copy when it is still being made.
- Every denial is a ``tool_denied`` run event and a structured log line.
- Every tool list / call request must carry its turn's capability (``capability.py``):
  the run's capabilities are cached per run, kept current by a watch of the runs
  bucket, and re-read from the stream leader before a request is refused (its turn
  may be newer than the cache). A refusal is a ``tool_request_refused`` log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import nats
import structlog
from massgen_kit import tracing
from massgen_kit.health import connect_options
from massgen_kit.jetstream import (
    close_connection,
    ensure_events_stream,
    ensure_runs_bucket,
)
from massgen_kit.metrics import REGISTRY
from massgen_proto import subjects
from massgen_proto.events import (
    AnswerAccepted,
    Consensus,
    RunFinished,
    ToolDenied,
    trusted_event,
)
from massgen_proto.messages import ErrorReply, RunAccepted
from massgen_proto.tools import (
    KEEPALIVE_HEADER,
    KEEPALIVE_SECONDS,
    MAX_KEEPALIVES,
    CheckRequest,
    CheckResult,
    CloseRunTools,
    ToolCallRequest,
    ToolList,
    ToolListRequest,
    ToolResult,
)
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from . import capability, file_requests
from .answer_checks import run_check
from .broker import RunTools, ToolsConfigError, close_exec
from .capabilities import Capabilities, CapabilityRequest
from .exec_calls import exec_cgroups
from .settings import GatewaySettings
from .workspace import copy_tree, final_workspace, save_final, snapshot

TOOL_CALLS = REGISTRY.counter(
    "massgen_tool_calls_total", "Tool calls served, by server and outcome.", ["server", "outcome"]
)
TOOL_DENIALS = REGISTRY.counter(
    "massgen_tool_denials_total", "Tool calls refused by a path permission, by rule.", ["rule"]
)
TOOL_REFUSALS = REGISTRY.counter(
    "massgen_tool_request_refusals_total",
    "Tool requests refused for want of the turn's capability, by reason.", ["reason"],
)  # fmt: skip
TOOL_SECONDS = REGISTRY.histogram(
    "massgen_tool_call_seconds", "Time to serve a tool call, by server.", ["server"]
)

__all__ = ["GatewayService"]

log = structlog.get_logger("massgen_gateway")

Handler = Callable[[Msg], Awaitable[None]]
"""What serves one request or event on a subject."""
_Request = TypeVar("_Request", ToolListRequest, ToolCallRequest, CheckRequest)

FINISH_WAIT = 10.0
"""Seconds a run that continues a session waits for its previous run's final copy."""


class GatewayService:
    """One gateway replica. ``start()`` then ``stop()``."""

    def __init__(self, settings: GatewaySettings | None = None) -> None:
        self.settings = settings or GatewaySettings()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runs: dict[str, RunTools] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._finishing: dict[str, asyncio.Event] = {}
        """Runs whose final workspace is being saved (set when done)."""
        self._stopped = False
        self.calls = 0
        """Tool calls handled (any outcome)."""
        self.denials = 0
        self.refusals = 0
        """Tool list / call requests refused for want of their turn's capability."""
        self._capabilities = Capabilities(lambda: self._jetstream)

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, make sure the events stream and runs bucket exist, subscribe."""
        s = self.settings
        self._nc = nc = await nats.connect(
            s.nats_url, name=f"mcp-gateway-{s.replica}", max_reconnect_attempts=-1,
            **connect_options(s.nats_url, "mcp-gateway"),
            reconnected_cb=self._on_reconnected,
        )  # fmt: skip
        self._js = js = nc.jetstream()
        await ensure_events_stream(js, s.stream_settings())
        self._kv = await ensure_runs_bucket(js, s.stream_settings())
        await self._capabilities.start()
        handlers: tuple[tuple[str, Handler], ...] = (
            (subjects.GATEWAY_TOOLS_LIST, self._on_list),
            (subjects.GATEWAY_TOOLS_CALL, self._on_call),
            (subjects.GATEWAY_CLOSE, self._on_close),
            (subjects.GATEWAY_CHECK, self._on_check),
            (subjects.GATEWAY_FILES, self._on_files),
            (subjects.GATEWAY_RUN_FILES, self._on_run_files),
        )
        for subject, handler in handlers:
            self._subs.append(
                await nc.subscribe(subject, queue=subjects.GATEWAY_QUEUE, cb=self._spawn(handler))
            )
        self._subs.append(
            await nc.subscribe(subjects.EVENTS_WILDCARD, cb=self._spawn(self._on_event))
        )
        log.info("gateway_started", replica=s.replica, workspace_root=s.workspace_root)

    async def stop(self) -> None:
        """Stop taking requests, finish those in flight, close every session. Idempotent."""
        if self._stopped or self._nc is None:
            return
        self._stopped = True
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await self._capabilities.stop()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        runs, self._runs = list(self._runs.values()), {}
        await asyncio.gather(*(r.close() for r in runs), return_exceptions=True)
        close_exec()
        await close_connection(self._nc)
        log.info("gateway_stopped", calls=self.calls, denials=self.denials, refusals=self.refusals)

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up (readiness)."""
        return self._nc is not None and self._nc.is_connected

    @property
    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the gateway is not started")
        return self._js

    def _spawn(self, handler: Handler) -> Handler:
        async def callback(msg: Msg) -> None:
            task = asyncio.create_task(self._guard(handler, msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return callback

    async def _guard(self, handler: Handler, msg: Msg) -> None:
        keepalive = (
            asyncio.create_task(self._keep_alive(msg.reply))
            if msg.reply and handler != self._on_close
            else None
        )
        try:
            with tracing.span(f"gateway.serve.{msg.subject.rsplit('.', 1)[-1]}", msg.headers):
                await handler(msg)
        except Exception as error:
            log.error("gateway_handler_failed", subject=msg.subject, error=repr(error))
            if msg.reply:
                with contextlib.suppress(Exception):
                    await self._respond(
                        msg, ErrorReply(error=f"gateway error: {error}", code="internal")
                    )
        finally:
            if keepalive is not None:
                keepalive.cancel()

    async def _keep_alive(self, reply: str) -> None:
        """Tell the caller this replica is still working on its request (see
        ``tools.KEEPALIVE_SECONDS``); cancelled before the answer is sent."""
        headers = {KEEPALIVE_HEADER: "working"}
        nc = self._nc
        if nc is None:
            return
        for _ in range(MAX_KEEPALIVES):
            await asyncio.sleep(KEEPALIVE_SECONDS)
            with contextlib.suppress(Exception):
                await nc.publish(reply, b"", headers=headers)

    # -- runs -------------------------------------------------------------------------

    async def _run(self, run_id: str) -> RunTools | None:
        """The run's tools, loading its config from the runs bucket on first use.

        Raises:
            ToolsConfigError: the run's tool settings are unusable.
        """
        run = self._runs.get(run_id)
        if run is not None:
            return run
        lock = self._loading.setdefault(run_id, asyncio.Lock())
        async with lock:
            run = self._runs.get(run_id)
            if run is not None:
                return run
            record = self._capabilities.fresh.pop(run_id, None)
            if record is None:
                latest = await self._capabilities.read_run(run_id)
                if latest is None:
                    return None
                record = latest[0]
            previous = await self._previous_workspace(run_id, record.previous_run_id)
            run = RunTools(
                run_id, record.config, self.settings, winner_label=record.winner_label,
                previous=previous,
            )  # fmt: skip
            self._runs[run_id] = run
            return run

    async def _previous_workspace(self, run_id: str, previous_run_id: str | None) -> Path | None:
        """The final workspace of the run ``run_id`` continues, or None (none named, or
        that run left no final workspace: no winner, or no agent of it used tools)."""
        if not previous_run_id or previous_run_id == run_id:
            return None
        try:
            subjects.validate_token(previous_run_id, "run id")
        except ValueError:
            return None
        path = final_workspace(Path(self.settings.workspace_root), previous_run_id)
        busy = previous_run_id in self._runs or previous_run_id in self._finishing
        if busy and not path.is_dir():
            # Its run_finished may still be on its way or its final copy being made (the
            # copy is renamed into place whole, so one that exists is complete).
            done = self._finishing.setdefault(previous_run_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), FINISH_WAIT)
        if path.is_dir():
            log.info("previous_workspace", run_id=run_id, previous_run_id=previous_run_id)
            return path
        log.warning(
            "previous_workspace_missing", run_id=run_id, previous_run_id=previous_run_id,
            path=str(path),
        )  # fmt: skip
        return None

    async def _on_reconnected(self) -> None:
        self._capabilities.distrust()  # writes may have been missed meanwhile

    async def _refusal(
        self,
        request: CapabilityRequest,
    ) -> str | None:
        """Why ``request`` may not act on its run (None: it may)."""
        return await self._capabilities.refusal(request, lambda run_id: run_id in self._runs)

    async def _refuse(
        self, msg: Msg, request: ToolListRequest | ToolCallRequest | CheckRequest, reason: str
    ) -> None:
        self.refusals += 1
        TOOL_REFUSALS.inc(reason=reason)
        tool = getattr(request, "name", None)
        log.warning(
            "tool_request_refused", run_id=request.run_id, agent=request.agent_id,
            label=request.label, turn=request.turn_id, phase=request.phase, tool=tool,
            reason=reason,
        )  # fmt: skip
        why = f"refused: {capability.REASONS.get(reason, reason)} ({reason})"
        if tool is None:
            what = "check" if isinstance(request, CheckRequest) else "tool list"
            await self._respond(msg, ErrorReply(error=f"{what} {why}", code="forbidden"))
        else:
            await self._respond(
                msg, ToolResult(name=tool, content=f"Error: tool call {why}", is_error=True)
            )

    # -- handlers ---------------------------------------------------------------------

    async def _run_or_reply(self, msg: Msg, run_id: str) -> RunTools | None:
        """The run's tools, or None after replying why there are none."""
        try:
            run = await self._run(run_id)
        except ToolsConfigError as error:
            await self._respond(msg, ErrorReply(error=str(error)))
            return None
        if run is None:
            await self._respond(msg, ErrorReply(error=f"no run {run_id!r}", code="not_found"))
        return run

    async def _admit(
        self, msg: Msg, kind: type[_Request], what: str
    ) -> tuple[_Request, RunTools] | None:
        """A tool request and its run's tools, or None after replying why it is not served
        (malformed, refused for want of its turn's capability, no such run)."""
        try:
            request = kind.model_validate_json(msg.data)
        except ValidationError as error:
            await self._respond(msg, ErrorReply(error=f"bad {what}: {error}"))
            return None
        reason = await self._refusal(request)
        if reason is not None:
            await self._refuse(msg, request, reason)
            return None
        run = await self._run_or_reply(msg, request.run_id)
        if run is None:
            return None
        return request, run

    async def _on_list(self, msg: Msg) -> None:
        admitted = await self._admit(msg, ToolListRequest, "tool_list_request")
        if admitted is None:
            return
        request, run = admitted
        if request.agent_id not in run.labels:
            await self._respond(
                msg, ErrorReply(error=f"no agent {request.agent_id!r} in run", code="not_found")
            )
            return
        if not run.uses_tools(request.agent_id):
            await self._respond(msg, ToolList())
            return
        try:
            agent = run.agent(request.agent_id, request.label)
        except KeyError as error:
            await self._respond(msg, ErrorReply(error=str(error.args[0])))
            return
        listing = await agent.list_tools(request.phase)
        for problem in listing.errors:
            log.warning(
                "mcp_server_unavailable",
                run_id=request.run_id,
                agent=request.agent_id,
                error=problem,
            )
        await self._respond(msg, listing)

    async def _on_call(self, msg: Msg) -> None:
        admitted = await self._admit(msg, ToolCallRequest, "tool_call_request")
        if admitted is None:
            return
        request, run = admitted
        try:
            agent = run.agent(request.agent_id, request.label)
        except KeyError as error:
            await self._respond(msg, ErrorReply(error=str(error.args[0]), code="not_found"))
            return
        started = time.perf_counter()
        outcome = await agent.call(request.phase, request.name, request.arguments, request.timeout)
        self.calls += 1
        result = outcome.result
        if request.name.startswith("custom_tool__"):
            server = "custom_tool"
        else:
            server = request.name.split("__")[1] if request.name.count("__") >= 2 else "unknown"
        state = "denied" if result.denied else ("error" if result.is_error else "ok")
        TOOL_CALLS.inc(server=server, outcome=state)
        TOOL_SECONDS.observe(time.perf_counter() - started, server=server)
        if outcome.denial is not None:
            self.denials += 1
            d = outcome.denial
            TOOL_DENIALS.inc(rule=d.rule)
            log.warning(
                "tool_denied", run_id=request.run_id, agent=request.agent_id, label=request.label,
                turn=request.turn_id, tool=request.name, path=d.raw, resolved=d.path, rule=d.rule,
                phase=request.phase,
            )  # fmt: skip
            event = ToolDenied(
                run_id=request.run_id, agent=request.agent_id, label=request.label,
                turn_id=request.turn_id, tool=request.name, path=d.raw, resolved=d.path,
                rule=d.rule, phase=request.phase,
            )  # fmt: skip
            await self._jetstream.publish(
                subjects.events_subject(request.run_id, "tools"), event.model_dump_json().encode()
            )
        log.info(
            "tool_call", run_id=request.run_id, agent=request.agent_id, turn=request.turn_id,
            tool=request.name, is_error=result.is_error, denied=result.denied,
            size=len(result.content), ms=round((time.perf_counter() - started) * 1000, 2),
        )  # fmt: skip
        await self._respond(msg, result)

    async def _on_check(self, msg: Msg) -> None:
        """A worker's answer run against its task's examples (``answer_checks``)."""
        try:
            request = CheckRequest.model_validate_json(msg.data)
        except ValidationError as error:
            await self._respond(msg, ErrorReply(error=f"bad check_request: {error}"))
            return
        reason = await self._refusal(request)
        if reason is not None:
            await self._refuse(msg, request, reason)
            return
        found = await run_check(
            request.code, request.examples, self.settings.exec_tmp_bytes, exec_cgroups()
        )
        if isinstance(found, str):
            await self._respond(msg, ErrorReply(error=f"no check: {found}"))
            return
        log.info(
            "answer_checked", run_id=request.run_id, label=request.label, turn=request.turn_id,
            passed=found.passed, total=found.total,
        )  # fmt: skip
        await self._respond(msg, CheckResult(check=found))

    async def _on_files(self, msg: Msg) -> None:
        """A worker's chunk read or write of its agent's file (``file_requests``)."""
        await self._respond(msg, await file_requests.agent_file(msg.data, self._refusal, self._run))

    async def _on_run_files(self, msg: Msg) -> None:
        """The API's listing of a run's media files, or a chunk of one."""
        reply = await file_requests.run_file(msg.data, self._capabilities.read_run, self.settings)
        await self._respond(msg, reply)

    async def _on_close(self, msg: Msg) -> None:
        try:
            request = CloseRunTools.model_validate_json(msg.data)
        except ValidationError as error:
            await self._respond(msg, ErrorReply(error=f"bad close_run_tools: {error}"))
            return
        await self._close_run(request.run_id)
        await self._respond(msg, RunAccepted(run_id=request.run_id))

    async def _close_run(self, run_id: str) -> None:
        run = self._runs.pop(run_id, None)
        self._loading.pop(run_id, None)
        self._capabilities.fresh.pop(run_id, None)
        waiting = self._finishing.pop(run_id, None)
        if waiting is not None:  # closed without a final copy: stop waiting for one
            waiting.set()
        if run is not None:
            await run.close()
            log.info("run_tools_closed", run_id=run_id, agents=len(run.agents))

    async def _on_event(self, msg: Msg) -> None:
        # Only the orchestrator's own subject can accept an answer or end a run: a
        # worker's forged run_finished must not close another run's sessions.
        event = trusted_event(msg.subject, msg.data)
        if event is None:
            return  # unknown, malformed, or from a publisher not entitled to it
        if not isinstance(event, AnswerAccepted | Consensus | RunFinished):
            return
        run = self._runs.get(event.run_id)
        if run is None:
            return  # no agent of this run has used tools through this replica
        match event:
            case AnswerAccepted():
                workspace = run.workspace_of(event.label)
                if workspace is not None and workspace.is_dir():
                    target = await asyncio.to_thread(snapshot, workspace, run.layout, event.label)
                    log.info(
                        "workspace_snapshot", run_id=event.run_id, label=event.label,
                        path=str(target),
                    )  # fmt: skip
            case Consensus():
                run.winner_label = event.winner_label
            case RunFinished():
                await self._finish(run, event)

    async def _finish(self, run: RunTools, event: RunFinished) -> None:
        done = self._finishing.setdefault(run.run_id, asyncio.Event())
        try:
            winner = run.labels.get(event.winner) if event.winner else run.winner_label
            workspace = run.workspace_of(winner) if winner else None
            if workspace is not None and workspace.is_dir():
                # The run's own copy (a session's next turn starts from it), then the
                # configured final folder (e.g. the CLI's log folder) when elsewhere.
                kept = await asyncio.to_thread(save_final, workspace, run.layout)
                target = self.settings.final_dir_for(run.run_id)
                if target.absolute() != kept:
                    await asyncio.to_thread(copy_tree, workspace, target)
                log.info("final_workspace", run_id=run.run_id, label=winner, path=str(target))
        finally:
            done.set()
            self._finishing.pop(run.run_id, None)
        await self._close_run(run.run_id)

    async def _respond(self, msg: Msg, reply: BaseModel) -> None:
        # Not ``msg.respond``: nats-py copies the request's headers (its ``traceparent``)
        # into the reply, only for the requester to parse them again.
        if msg.reply and self._nc is not None:
            await self._nc.publish(msg.reply, reply.model_dump_json().encode())

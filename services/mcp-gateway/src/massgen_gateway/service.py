"""The gateway's NATS adapter: the only module here that touches NATS.

- ``GATEWAY_TOOLS_LIST`` / ``GATEWAY_TOOLS_CALL`` / ``GATEWAY_CLOSE`` (queue group
  ``mcp-gateway``): request/reply, each message handled in its own task so a slow tool
  never holds up another agent's call.
- A run's config comes from the orchestrator's runs bucket (``RunState.config``) the
  first time the run is named, so the gateway needs no copy of it in any message.
- Run events (``massgen.events.*``): ``answer_accepted`` snapshots the agent's
  workspace under its label, ``consensus`` records the winner, ``run_finished`` copies
  the winner's workspace to the final folder and closes the run's MCP sessions.
- Every denial is a ``tool_denied`` run event and a structured log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import nats
import structlog
from massgen_proto import subjects
from massgen_proto.config import RunConfig
from massgen_proto.events import RunEventAdapter, ToolDenied
from massgen_proto.jetstream import close_connection, ensure_events_stream, ensure_runs_bucket
from massgen_proto.messages import ErrorReply, RunAccepted
from massgen_proto.tools import CloseRunTools, ToolCallRequest, ToolList, ToolListRequest
from pydantic import ValidationError

from .broker import RunTools, ToolsConfigError
from .settings import GatewaySettings
from .workspace import copy_tree, snapshot

__all__ = ["GatewayService"]

log = structlog.get_logger("massgen_gateway")


class GatewayService:
    """One gateway replica. ``start()`` then ``stop()``."""

    def __init__(self, settings: GatewaySettings | None = None) -> None:
        self.settings = settings or GatewaySettings()
        self._nc: Any = None
        self._js: Any = None
        self._kv: Any = None
        self._subs: list[Any] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runs: dict[str, RunTools] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._finished: set[str] = set()
        self._stopped = False
        self.calls = 0
        """Tool calls handled (any outcome)."""
        self.denials = 0

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, make sure the events stream and runs bucket exist, subscribe."""
        s = self.settings
        self._nc = await nats.connect(
            s.nats_url, name=f"mcp-gateway-{s.replica}", max_reconnect_attempts=-1
        )
        self._js = self._nc.jetstream()
        await ensure_events_stream(self._js, s.stream_settings())
        self._kv = await ensure_runs_bucket(self._js, s.stream_settings())
        for subject, handler in (
            (subjects.GATEWAY_TOOLS_LIST, self._on_list),
            (subjects.GATEWAY_TOOLS_CALL, self._on_call),
            (subjects.GATEWAY_CLOSE, self._on_close),
        ):
            self._subs.append(
                await self._nc.subscribe(
                    subject, queue=subjects.GATEWAY_QUEUE, cb=self._spawn(handler)
                )
            )
        self._subs.append(
            await self._nc.subscribe(subjects.EVENTS_WILDCARD, cb=self._spawn(self._on_event))
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
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        runs, self._runs = list(self._runs.values()), {}
        await asyncio.gather(*(r.close() for r in runs), return_exceptions=True)
        await close_connection(self._nc)
        log.info("gateway_stopped", calls=self.calls, denials=self.denials)

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up (readiness)."""
        return self._nc is not None and self._nc.is_connected

    def _spawn(self, handler):
        async def callback(msg: Any) -> None:
            task = asyncio.create_task(self._guard(handler, msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return callback

    async def _guard(self, handler, msg: Any) -> None:
        try:
            await handler(msg)
        except Exception as error:
            log.error("gateway_handler_failed", subject=msg.subject, error=repr(error))
            if msg.reply:
                with contextlib.suppress(Exception):
                    await self._respond(
                        msg, ErrorReply(error=f"gateway error: {error}", code="internal")
                    )

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
            try:
                entry = await self._kv.get(run_id)
            except Exception:  # KeyNotFoundError, or a bad key
                return None
            data = json.loads(entry.value)
            config = RunConfig.model_validate(data["config"])
            run = RunTools(run_id, config, self.settings, winner_label=data.get("winner"))
            self._runs[run_id] = run
            return run

    # -- handlers ---------------------------------------------------------------------

    async def _run_or_reply(self, msg: Any, run_id: str) -> RunTools | None:
        """The run's tools, or None after replying why there are none."""
        try:
            run = await self._run(run_id)
        except ToolsConfigError as error:
            await self._respond(msg, ErrorReply(error=str(error)))
            return None
        if run is None:
            await self._respond(msg, ErrorReply(error=f"no run {run_id!r}", code="not_found"))
        return run

    async def _on_list(self, msg: Any) -> None:
        try:
            request = ToolListRequest.model_validate_json(msg.data)
        except ValidationError as error:
            await self._respond(msg, ErrorReply(error=f"bad tool_list_request: {error}"))
            return
        run = await self._run_or_reply(msg, request.run_id)
        if run is None:
            return
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

    async def _on_call(self, msg: Any) -> None:
        try:
            request = ToolCallRequest.model_validate_json(msg.data)
        except ValidationError as error:
            await self._respond(msg, ErrorReply(error=f"bad tool_call_request: {error}"))
            return
        run = await self._run_or_reply(msg, request.run_id)
        if run is None:
            return
        try:
            agent = run.agent(request.agent_id, request.label)
        except KeyError as error:
            await self._respond(msg, ErrorReply(error=str(error.args[0]), code="not_found"))
            return
        started = time.perf_counter()
        outcome = await agent.call(request.phase, request.name, request.arguments, request.timeout)
        self.calls += 1
        result = outcome.result
        if outcome.denial is not None:
            self.denials += 1
            d = outcome.denial
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
            await self._js.publish(
                subjects.events_subject(request.run_id), event.model_dump_json().encode()
            )
        log.info(
            "tool_call", run_id=request.run_id, agent=request.agent_id, turn=request.turn_id,
            tool=request.name, is_error=result.is_error, denied=result.denied,
            size=len(result.content), ms=round((time.perf_counter() - started) * 1000, 2),
        )  # fmt: skip
        await self._respond(msg, result)

    async def _on_close(self, msg: Any) -> None:
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
        if run is not None:
            await run.close()
            log.info("run_tools_closed", run_id=run_id, agents=len(run.agents))

    async def _on_event(self, msg: Any) -> None:
        try:
            event = RunEventAdapter.validate_json(msg.data)
        except ValidationError:
            return  # an event kind this replica does not know: not ours to judge
        kind = event.kind
        if kind not in ("answer_accepted", "consensus", "run_finished"):
            return
        run = self._runs.get(event.run_id)
        if run is None:
            return  # no agent of this run has used tools through this replica
        if kind == "answer_accepted":
            workspace = run.workspace_of(event.label)
            if workspace is not None and workspace.is_dir():
                target = await asyncio.to_thread(snapshot, workspace, run.layout, event.label)
                log.info(
                    "workspace_snapshot", run_id=event.run_id, label=event.label, path=str(target)
                )
        elif kind == "consensus":
            run.winner_label = event.winner_label
        else:
            await self._finish(run, event)

    async def _finish(self, run: RunTools, event: Any) -> None:
        winner = run.labels.get(event.winner) if event.winner else run.winner_label
        if winner:
            workspace = run.workspace_of(winner)
            if workspace is not None and workspace.is_dir():
                target = self.settings.final_dir_for(run.run_id)
                await asyncio.to_thread(copy_tree, workspace, target)
                log.info("final_workspace", run_id=run.run_id, label=winner, path=str(target))
        await self._close_run(run.run_id)

    async def _respond(self, msg: Any, reply: Any) -> None:
        if msg.reply:
            await msg.respond(reply.model_dump_json().encode())

"""The ``/v1`` routes: runs, SSE events, teams, sessions, OpenAI-compatible completions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from massgen_proto.config import ConfigError, parse_config
from massgen_proto.events import TERMINAL_STATUSES, RunEventAdapter
from massgen_proto.ids import new_run_id
from massgen_proto.messages import ChatMessage, CreateRun, ErrorReply
from massgen_proto.subjects import validate_token
from massgen_proto.summary import RunSummary

from .auth import PUBLIC_TENANT, TokenTable
from .errors import ApiError
from .metrics import Metrics
from .models import (
    AgentView,
    CancelBody,
    ChatCompletionRequest,
    CreateRunBody,
    CreateSessionBody,
    CreateTurnBody,
    ErrorBody,
    RunCreatedBody,
    RunLinks,
    RunList,
    RunListItem,
    RunStatusName,
    RunView,
    SessionTurnView,
    SessionView,
    TeamList,
    TeamView,
    Timings,
)
from .openai_compat import (
    MessagesError,
    StreamTranslator,
    chunk,
    completion,
    split_messages,
    usage_of,
)
from .records import RunRecord, SessionRecord, SessionTurn
from .service import Backend, OrchestratorUnavailable
from .settings import ApiSettings
from .sse import KEEP_ALIVE, event_kind, frame, parse_last_event_id
from .teams import Team

__all__ = ["ApiContext", "router"]

log = structlog.get_logger("api")


@dataclass
class ApiContext:
    """What the routes share: settings, the NATS adapter, teams, tokens, counters."""

    settings: ApiSettings
    backend: Backend
    teams: dict[str, Team]
    tokens: TokenTable
    metrics: Metrics


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


_bearer = HTTPBearer(auto_error=False, description="A token configured on the server.")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (401, "Missing or unknown bearer token"),
        (403, "The run or session belongs to another tenant"),
        (404, "No such run, session or team"),
        (413, "Request body too large"),
        (422, "Malformed body or config; `error.path` / `detail[].path` point at the problem"),
        (503, "No orchestrator answered"),
    )
}


async def tenant_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's tenant, from its bearer token (401 without a known one)."""
    tokens = _ctx(request).tokens
    if not tokens.enabled:
        return PUBLIC_TENANT
    found = tokens.tenant_for(credentials.credentials) if credentials else None
    if found is None:
        raise ApiError(
            401,
            "missing or unknown bearer token" if credentials else "bearer token required",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


Tenant = Annotated[str, Depends(tenant_of)]
Ctx = Annotated[ApiContext, Depends(_ctx)]
RunId = Annotated[str, PathParam(max_length=100, description="Run id")]

router = APIRouter(prefix="/v1", responses=_ERRORS)


# -- helpers --------------------------------------------------------------------------------


def _links(run_id: str) -> RunLinks:
    base = f"/v1/runs/{run_id}"
    return RunLinks(self=base, events=f"{base}/events", cancel=f"{base}/cancel")


def _team(ctx: ApiContext, name: str, *, path: str) -> Team:
    team = ctx.teams.get(name)
    if team is None:
        known = ", ".join(sorted(ctx.teams)) or "none configured"
        raise ApiError(
            404, f"unknown team {name!r} (teams: {known})", code="team_not_found",
            problems=[(path, "unknown team")],
        )  # fmt: skip
    return team


def _check_config(ctx: ApiContext, config: dict[str, Any], path: str) -> None:
    """Validate a tenant's config, including the operator's endpoint policy."""
    try:
        parsed = parse_config(config)
        refused = ctx.settings.endpoint_policy.problems(parsed)
        refused += ctx.settings.catalog.problems(parsed)
        if refused:
            raise ConfigError(refused)
    except ConfigError as error:
        problems = [(f"{path}.{p}" if p else path, m) for p, m in error.problems]
        raise ApiError(
            422, f"invalid config: {error}", code="invalid_config", problems=problems
        ) from None


def config_warnings(config: dict[str, Any]) -> list[str]:
    """Keys of a (valid) config that are accepted but not applied, one message each."""
    try:
        return parse_config(config).warnings()
    except ConfigError:
        return []  # refused elsewhere, with the reason


async def _record_for(ctx: ApiContext, tenant: str, run_id: str) -> RunRecord:
    try:
        validate_token(run_id, "run id")
    except ValueError:
        raise ApiError(404, f"no run {run_id!r}", code="run_not_found") from None
    record = await ctx.backend.get_record(run_id)
    if record is None:
        raise ApiError(404, f"no run {run_id!r}", code="run_not_found")
    if record.tenant != tenant:
        raise ApiError(403, f"run {run_id!r} belongs to another tenant", code="forbidden")
    return record


async def _start_run(
    ctx: ApiContext,
    tenant: str,
    question: str,
    config: dict[str, Any],
    *,
    team: str | None,
    session_id: str | None = None,
    history: list[ChatMessage] | None = None,
    run_id: str | None = None,
) -> str:
    run_id = run_id or new_run_id()
    record = RunRecord(
        run_id=run_id, tenant=tenant, created_at=time.time(), question=question,
        team=team, session_id=session_id, warnings=config_warnings(config),
    )  # fmt: skip
    request = CreateRun(run_id=run_id, question=question, config=config, history=history or [])
    try:
        reply = await ctx.backend.create_run(request, record)
    except OrchestratorUnavailable as error:
        raise ApiError(503, str(error), code="orchestrator_unavailable") from None
    if isinstance(reply, ErrorReply):
        status = 422 if reply.code == "bad_request" else 502
        raise ApiError(status, reply.error, code="run_refused")
    log.info("run.created", run_id=run_id, tenant=tenant, team=team, session_id=session_id)
    return run_id


def _view(record: RunRecord, summary: RunSummary | None) -> RunView:
    summary = summary or RunSummary(run_id=record.run_id, question=record.question)
    data = summary.to_json()
    agents = [
        AgentView(
            id=agent,
            label=summary.labels.get(agent, ""),
            status=status,
            **summary.tokens.get(agent, {}),
        )
        for agent, status in summary.agents.items()
    ]
    first = (
        round(summary.first_turn_at - summary.started_at, 3)
        if summary.first_turn_at and summary.started_at
        else None
    )
    return RunView(
        id=record.run_id,
        status=summary.status,
        message=summary.message,
        question=summary.question or record.question,
        team=record.team,
        session_id=record.session_id,
        final_answer=summary.final_answer,
        winner=summary.winner,
        answers=data["answers"],
        votes=data["votes"],
        agents=agents,
        warnings=record.warnings,
        timings=Timings(
            created_at=record.created_at,
            started_at=summary.started_at,
            first_turn_at=summary.first_turn_at,
            finished_at=summary.finished_at,
            duration_seconds=data["duration_seconds"],
            time_to_first_turn_seconds=first,
        ),
        links=_links(record.run_id),
    )


async def _wait_finished(ctx: ApiContext, run_id: str, limit: float) -> RunSummary:
    """Follow the run's events until it is over; return its summary."""

    async def follow() -> None:
        agen = ctx.backend.follow(run_id)
        try:
            async for item in agen:
                if item is not None and event_kind(item[1]) == "run_finished":
                    return
        finally:
            await agen.aclose()

    try:
        await asyncio.wait_for(follow(), limit)
    except TimeoutError:
        raise ApiError(504, f"run {run_id} did not finish within {limit:.0f} s") from None
    summary = await ctx.backend.summary(run_id)
    assert summary is not None
    return summary


# -- runs -----------------------------------------------------------------------------------


@router.post("/runs", status_code=201, response_model=RunCreatedBody, tags=["runs"])
async def create_run(ctx: Ctx, tenant: Tenant, body: CreateRunBody) -> JSONResponse:
    """Start a run with a named team or a MassGen config (or as a session's next turn)."""
    if body.session_id is not None:
        if body.team is not None or body.config is not None:
            raise ApiError(
                422, "a session turn uses the session's team; leave out 'team' and 'config'",
                problems=[("body.session_id", "given with team/config")],
            )  # fmt: skip
        run_id, warnings = await _session_turn(ctx, tenant, body.session_id, body.question)
    else:
        if body.team is not None:
            config = _team(ctx, body.team, path="body.team").config
        else:
            assert body.config is not None
            _check_config(ctx, body.config, "body.config")
            config = body.config
        run_id = await _start_run(ctx, tenant, body.question, config, team=body.team)
        warnings = config_warnings(config)
    created = RunCreatedBody(
        id=run_id, status="running", session_id=body.session_id, links=_links(run_id),
        warnings=warnings,
    )  # fmt: skip
    return JSONResponse(
        created.model_dump(), status_code=201, headers={"Location": f"/v1/runs/{run_id}"}
    )


@router.get("/runs", response_model=RunList, tags=["runs"])
async def list_runs(
    ctx: Ctx,
    tenant: Tenant,
    status: Annotated[RunStatusName | None, Query(description="Only runs in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> RunList:
    """The caller's runs, newest first, a page at a time."""
    records = [r for r in await ctx.backend.all_runs() if r.tenant == tenant]
    open_ = [r for r in records if r.status not in TERMINAL_STATUSES]
    # The index status lags when this process was down at a run's end: ask the KV state.
    fresh = await asyncio.gather(*(ctx.backend.orchestrator_status(r.run_id) for r in open_))
    for record, state_status in zip(open_, fresh, strict=True):
        if state_status:
            record.status = state_status
    if status is not None:
        records = [r for r in records if r.status == status]
    page = records[offset : offset + limit]
    return RunList(
        data=[
            RunListItem(
                id=r.run_id,
                status=r.status,
                question=r.question,
                team=r.team,
                session_id=r.session_id,
                created_at=r.created_at,
                links=_links(r.run_id),
            )  # fmt: skip
            for r in page
        ],
        total=len(records),
        offset=offset,
        limit=limit,
        next_offset=offset + limit if offset + limit < len(records) else None,
    )


@router.get("/runs/{run_id}", response_model=RunView, tags=["runs"])
async def get_run(ctx: Ctx, tenant: Tenant, run_id: RunId) -> RunView:
    """Status, answers, votes, winner, final answer, timings and token usage per agent."""
    record = await _record_for(ctx, tenant, run_id)
    return _view(record, await ctx.backend.summary(run_id))


@router.post("/runs/{run_id}/cancel", response_model=RunView, tags=["runs"])
async def cancel_run(
    ctx: Ctx, tenant: Tenant, run_id: RunId, body: Annotated[CancelBody | None, Body()] = None
) -> RunView:
    """Cancel a run; what was already accepted is kept. A finished run is left as it is."""
    record = await _record_for(ctx, tenant, run_id)
    summary = await ctx.backend.summary(run_id)
    if summary is None or summary.status not in TERMINAL_STATUSES:
        try:
            reply = await ctx.backend.cancel_run(run_id, (body or CancelBody()).reason)
        except OrchestratorUnavailable as error:
            raise ApiError(503, str(error), code="orchestrator_unavailable") from None
        if isinstance(reply, ErrorReply) and reply.code != "not_found":
            raise ApiError(409, reply.error, code="cancel_refused")
        summary = await ctx.backend.summary(run_id)
    return _view(record, summary)


@router.get(
    "/runs/{run_id}/events",
    tags=["runs"],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "Server-sent events: every run event from the start (or after "
                "`Last-Event-ID`), then live; `id` is the JetStream stream sequence, "
                "`event` the event kind, `data` the event JSON. Ends after `run_finished`."
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "Nothing after `Last-Event-ID`: the run is over"},
    },
)
async def run_events(
    ctx: Ctx,
    tenant: Tenant,
    run_id: RunId,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
) -> Response:
    """Replay the run's events, then follow it live (SSE)."""
    await _record_for(ctx, tenant, run_id)
    after = parse_last_event_id(last_event_id)
    last = await ctx.backend.last_sequence(run_id)
    if last is not None and last[1] == "run_finished" and last[0] <= after:
        return Response(status_code=204)
    metrics = ctx.metrics

    async def stream() -> AsyncIterator[bytes]:
        metrics.sse_clients += 1
        agen = ctx.backend.follow(run_id, after, ctx.settings.sse_heartbeat)
        try:
            yield b"retry: 1000\n\n"
            async for item in agen:
                if item is None:
                    yield KEEP_ALIVE
                    continue
                seq, data = item
                kind = event_kind(data)
                yield frame(seq, kind, data)
                if kind == "run_finished":
                    return
        finally:
            metrics.sse_clients -= 1
            await agen.aclose()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- teams ----------------------------------------------------------------------------------


def _team_views(ctx: ApiContext) -> list[TeamView]:
    return [
        TeamView(name=t.name, description=t.description, agents=t.agents)
        for t in sorted(ctx.teams.values(), key=lambda t: t.name)
    ]


@router.get("/teams", response_model=TeamList, tags=["teams"])
async def list_teams(ctx: Ctx, tenant: Tenant) -> TeamList:
    """The named teams configured on this server."""
    return TeamList(data=_team_views(ctx))


# -- sessions -------------------------------------------------------------------------------


async def _session(ctx: ApiContext, tenant: str, session_id: str) -> tuple[SessionRecord, int]:
    try:
        validate_token(session_id, "session id")
    except ValueError:
        raise ApiError(404, f"no session {session_id!r}", code="session_not_found") from None
    found = await ctx.backend.get_session(session_id)
    if found is None:
        raise ApiError(404, f"no session {session_id!r}", code="session_not_found")
    if found[0].tenant != tenant:
        raise ApiError(403, f"session {session_id!r} belongs to another tenant", code="forbidden")
    return found


async def _settle_turns(ctx: ApiContext, session: SessionRecord) -> None:
    """Fill in the final answers of finished turns."""
    for turn in session.turns:
        if turn.status in TERMINAL_STATUSES:
            continue
        summary = await ctx.backend.summary(turn.run_id)
        if summary is not None and summary.status in TERMINAL_STATUSES:
            turn.status = summary.status
            turn.answer = summary.final_answer


def _history(session: SessionRecord) -> list[ChatMessage]:
    history: list[ChatMessage] = []
    for turn in session.turns:
        if turn.answer:
            history.append(ChatMessage(role="user", content=turn.question))
            history.append(ChatMessage(role="assistant", content=turn.answer))
    return history


async def _session_turn(
    ctx: ApiContext, tenant: str, session_id: str, question: str
) -> tuple[str, list[str]]:
    """Reserve the session's next turn (compare-and-set), then start its run.

    Returns:
        The run id and its config's warnings.
    """
    for _ in range(5):
        session, revision = await _session(ctx, tenant, session_id)
        await _settle_turns(ctx, session)
        running = [t for t in session.turns if t.status not in TERMINAL_STATUSES]
        if running:
            raise ApiError(
                409,
                f"the session's previous turn (run {running[-1].run_id}) is still running; "
                "wait for it to finish or cancel it",
                code="turn_in_progress",
            )
        if session.team is not None:
            config = _team(ctx, session.team, path="session.team").config
        else:
            config = session.config or {}
        history = _history(session)
        run_id = new_run_id()
        session.turns.append(SessionTurn(run_id=run_id, question=question))
        if not await ctx.backend.update_session(session, revision):
            continue
        try:
            started = await _start_run(
                ctx, tenant, question, config, team=session.team,
                session_id=session_id, history=history, run_id=run_id,
            )  # fmt: skip
            return started, config_warnings(config)
        except BaseException:
            await _drop_turn(ctx, session_id, run_id)
            raise
    raise ApiError(409, "the session changed under this request; retry", code="conflict")


async def _drop_turn(ctx: ApiContext, session_id: str, run_id: str) -> None:
    for _ in range(5):
        found = await ctx.backend.get_session(session_id)
        if found is None:
            return
        session, revision = found
        session.turns = [t for t in session.turns if t.run_id != run_id]
        if await ctx.backend.update_session(session, revision):
            return


def _session_view(session: SessionRecord) -> SessionView:
    return SessionView(
        id=session.id,
        team=session.team,
        created_at=session.created_at,
        turns=[
            SessionTurnView(run_id=t.run_id, question=t.question, answer=t.answer, status=t.status)
            for t in session.turns
        ],
    )


@router.post("/sessions", status_code=201, response_model=SessionView, tags=["sessions"])
async def create_session(ctx: Ctx, tenant: Tenant, body: CreateSessionBody) -> JSONResponse:
    """Start a multi-turn conversation with a team; each turn sees the earlier ones."""
    if body.team is not None:
        _team(ctx, body.team, path="body.team")
    else:
        assert body.config is not None
        _check_config(ctx, body.config, "body.config")
    session = SessionRecord(
        id=new_run_id(), tenant=tenant, created_at=time.time(), team=body.team, config=body.config
    )
    await ctx.backend.create_session(session)
    return JSONResponse(
        _session_view(session).model_dump(),
        status_code=201,
        headers={"Location": f"/v1/sessions/{session.id}"},
    )


@router.get("/sessions/{session_id}", response_model=SessionView, tags=["sessions"])
async def get_session(
    ctx: Ctx, tenant: Tenant, session_id: Annotated[str, PathParam(max_length=100)]
) -> SessionView:
    """The session's turns with their answers."""
    session, _ = await _session(ctx, tenant, session_id)
    await _settle_turns(ctx, session)
    return _session_view(session)


@router.post(
    "/sessions/{session_id}/turns",
    status_code=201,
    tags=["sessions"],
    responses={
        201: {"description": "The turn's run (a RunView with `wait`, else a RunCreatedBody)"},
        409: {"model": ErrorBody, "description": "The previous turn is still running"},
    },
)
async def create_turn(
    ctx: Ctx,
    tenant: Tenant,
    session_id: Annotated[str, PathParam(max_length=100)],
    body: CreateTurnBody,
) -> JSONResponse:
    """Ask the session's next question: a run whose history is the earlier turns."""
    run_id, warnings = await _session_turn(ctx, tenant, session_id, body.question)
    headers = {"Location": f"/v1/runs/{run_id}"}
    if body.wait:
        summary = await _wait_finished(ctx, run_id, ctx.settings.completion_timeout)
        record = await ctx.backend.get_record(run_id)
        assert record is not None
        return JSONResponse(_view(record, summary).model_dump(), status_code=201, headers=headers)
    created = RunCreatedBody(
        id=run_id, status="running", session_id=session_id, links=_links(run_id),
        warnings=warnings,
    )  # fmt: skip
    return JSONResponse(created.model_dump(), status_code=201, headers=headers)


# -- OpenAI-compatible ------------------------------------------------------------------------


@router.get("/models", tags=["openai"])
async def list_models(ctx: Ctx, tenant: Tenant) -> dict[str, Any]:
    """The teams, as OpenAI models."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "massgen"}
            for name in sorted(ctx.teams)
        ],
    }


@router.post(
    "/chat/completions",
    tags=["openai"],
    responses={
        200: {
            "description": (
                "A `chat.completion`, or with `stream: true` server-sent "
                "`chat.completion.chunk` events ending with `data: [DONE]`"
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def chat_completions(ctx: Ctx, tenant: Tenant, body: ChatCompletionRequest) -> Response:
    """Ask a team (``model``) as if it were one model; the reply is the final presentation."""
    team = _team(ctx, body.model, path="body.model")
    try:
        question, history = split_messages(body.messages)
    except MessagesError as error:
        raise ApiError(422, str(error), problems=[(error.path, str(error))]) from None
    run_id = await _start_run(ctx, tenant, question, team.config, team=team.name, history=history)
    completion_id = f"chatcmpl-{run_id}"
    created = int(time.time())
    headers = {"X-MassGen-Run-Id": run_id}
    if not body.stream:
        summary = await _wait_finished(ctx, run_id, ctx.settings.completion_timeout)
        if summary.final_answer is None:
            raise ApiError(
                502, f"run {run_id} ended {summary.status} without an answer: {summary.message}",
                code="run_" + summary.status,
            )  # fmt: skip
        return JSONResponse(
            completion(completion_id, team.name, created, summary.final_answer,
                       usage_of(summary.tokens)),
            headers=headers,
        )  # fmt: skip
    include_usage = bool((body.model_extra or {}).get("stream_options", {}) or {})

    async def stream() -> AsyncIterator[bytes]:
        translator = StreamTranslator(reasoning=body.massgen_reasoning)

        def data(obj: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

        yield data(chunk(completion_id, team.name, created, {"role": "assistant", "content": ""}))
        agen = ctx.backend.follow(run_id, 0, ctx.settings.sse_heartbeat)
        try:
            async for item in agen:
                if item is None:
                    yield KEEP_ALIVE
                    continue
                event = RunEventAdapter.validate_json(item[1])
                for delta in translator.feed(event):
                    yield data(chunk(completion_id, team.name, created, delta))
                if translator.done:
                    break
        finally:
            await agen.aclose()
        if translator.error:
            yield data({"error": {"message": translator.error, "type": "run_failed"}})
        else:
            usage = usage_of(translator.tokens) if include_usage else None
            yield data(chunk(completion_id, team.name, created, {}, "stop", usage))
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

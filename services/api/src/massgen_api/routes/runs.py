"""The run routes: create, list, show, cancel, and follow a run's events (SSE)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from massgen_proto.events import TERMINAL_STATUSES
from massgen_proto.messages import ErrorReply
from massgen_proto.subjects import validate_token

from ..errors import ApiError
from ..models import (
    CancelBody,
    CreateRunBody,
    RunCreatedBody,
    RunList,
    RunListItem,
    RunStatusName,
    RunView,
)
from ..records import RunIndexEntry
from ..service import OrchestratorUnavailable
from ..sse import KEEP_ALIVE, event_kind, frame, parse_last_event_id
from .context import ApiContext, Ctx, RunId, Tenant
from .sessions import session_turn
from .starting import check_config, check_previous_run, config_warnings, named_team, start_run
from .views import links, run_view

__all__ = ["router"]

router = APIRouter()


async def _record_for(ctx: ApiContext, tenant: str, run_id: str) -> RunIndexEntry:
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


@router.post("/runs", status_code=201, response_model=RunCreatedBody, tags=["runs"])
async def create_run(
    ctx: Ctx,
    tenant: Tenant,
    body: CreateRunBody,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Send the same request again with the same key when its reply was "
            "lost: it starts or finds the same run, never a second one (409 when the key "
            "was used for another question).",
        ),
    ] = None,
) -> JSONResponse:
    """Start a run with a named team or a MassGen config (or as a session's next turn)."""
    if body.session_id is not None:
        if body.team is not None or body.config is not None:
            raise ApiError(
                422, "a session turn uses the session's team; leave out 'team' and 'config'",
                problems=[("body.session_id", "given with team/config")],
            )  # fmt: skip
        if body.previous_run_id is not None:
            raise ApiError(
                422, "a session turn starts from the session's last turn; leave out "
                "'previous_run_id'", problems=[("body.previous_run_id", "given with session_id")],
            )  # fmt: skip
        run_id, warnings = await session_turn(ctx, tenant, body.session_id, body.question)
    else:
        if body.team is not None:
            config = named_team(ctx, body.team, path="body.team").config
        else:
            assert body.config is not None
            check_config(ctx, body.config, "body.config")
            config = body.config
        previous = None
        if body.previous_run_id is not None:
            previous = await check_previous_run(
                ctx, tenant, body.previous_run_id, "body.previous_run_id"
            )
        run_id = await start_run(
            ctx, tenant, body.question, config, team=body.team, previous_run_id=previous,
            idempotency_key=idempotency_key,
        )  # fmt: skip
        warnings = config_warnings(config)
    created = RunCreatedBody(
        id=run_id, status="running", session_id=body.session_id, links=links(run_id),
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
                links=links(r.run_id),
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
    return run_view(record, await ctx.backend.summary(run_id))


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
    return run_view(record, summary)


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

"""The session routes: multi-turn conversations, each turn a run that sees the earlier ones.

A turn gets the earlier turns (since the last clear) as history, and starts from the
final workspace of the last completed one (``CreateRun.previous_run_id``, checked to be
the session's tenant's). ``POST /v1/sessions/{id}/clear`` forgets both.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from massgen_proto.events import TERMINAL_STATUSES
from massgen_proto.ids import new_run_id
from massgen_proto.messages import ChatMessage
from massgen_proto.subjects import validate_token

from ..errors import ApiError
from ..models import (
    CreateSessionBody,
    CreateTurnBody,
    ErrorBody,
    RunCreatedBody,
    SessionTurnView,
    SessionView,
)
from ..records import SessionRecord, SessionTurn
from .context import ApiContext, Ctx, Tenant
from .starting import (
    check_config,
    check_previous_run,
    config_warnings,
    named_team,
    start_run,
    wait_finished,
)
from .views import links, run_view

__all__ = ["router", "session_turn"]

router = APIRouter()


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
    for turn in session.turns[session.cleared_after :]:
        if turn.answer:
            history.append(ChatMessage(role="user", content=turn.question))
            history.append(ChatMessage(role="assistant", content=turn.answer))
    return history


def _previous_run(session: SessionRecord) -> str | None:
    """The last completed turn's run since the last clear (None: start empty)."""
    for turn in reversed(session.turns[session.cleared_after :]):
        if turn.status == "completed":
            return turn.run_id
    return None


async def session_turn(
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
            config = named_team(ctx, session.team, path="session.team").config
        else:
            config = session.config or {}
        history = _history(session)
        previous = _previous_run(session)
        if previous is not None:  # the session's own turn, and still checked: defence in depth
            await check_previous_run(ctx, tenant, previous, "session.turns")
        run_id = new_run_id()
        session.turns.append(SessionTurn(run_id=run_id, question=question))
        if not await ctx.backend.update_session(session, revision):
            continue
        try:
            started = await start_run(
                ctx, tenant, question, config, team=session.team,
                session_id=session_id, history=history, run_id=run_id,
                previous_run_id=previous,
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
        cleared_after=session.cleared_after,
    )


@router.post("/sessions", status_code=201, response_model=SessionView, tags=["sessions"])
async def create_session(ctx: Ctx, tenant: Tenant, body: CreateSessionBody) -> JSONResponse:
    """Start a multi-turn conversation with a team; each turn sees the earlier ones."""
    if body.team is not None:
        named_team(ctx, body.team, path="body.team")
    else:
        assert body.config is not None
        check_config(ctx, body.config, "body.config")
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
    run_id, warnings = await session_turn(ctx, tenant, session_id, body.question)
    headers = {"Location": f"/v1/runs/{run_id}"}
    if body.wait:
        summary = await wait_finished(ctx, run_id, ctx.settings.completion_timeout)
        record = await ctx.backend.get_record(run_id)
        assert record is not None
        return JSONResponse(
            run_view(record, summary).model_dump(), status_code=201, headers=headers
        )
    created = RunCreatedBody(
        id=run_id, status="running", session_id=session_id, links=links(run_id),
        warnings=warnings,
    )  # fmt: skip
    return JSONResponse(created.model_dump(), status_code=201, headers=headers)


@router.post(
    "/sessions/{session_id}/clear",
    response_model=SessionView,
    tags=["sessions"],
    responses={409: {"model": ErrorBody, "description": "A turn is still running"}},
)
async def clear_session(
    ctx: Ctx, tenant: Tenant, session_id: Annotated[str, PathParam(max_length=100)]
) -> SessionView:
    """Start the conversation afresh (the CLI's ``/clear``): the next turn sees none of
    the earlier turns, and its agents start with empty workspaces. The turns stay listed."""
    for _ in range(5):
        session, revision = await _session(ctx, tenant, session_id)
        await _settle_turns(ctx, session)
        running = [t for t in session.turns if t.status not in TERMINAL_STATUSES]
        if running:
            raise ApiError(
                409,
                f"the session's turn (run {running[-1].run_id}) is still running; wait for it "
                "to finish or cancel it",
                code="turn_in_progress",
            )
        session.cleared_after = len(session.turns)
        if await ctx.backend.update_session(session, revision):
            return _session_view(session)
    raise ApiError(409, "the session changed under this request; retry", code="conflict")

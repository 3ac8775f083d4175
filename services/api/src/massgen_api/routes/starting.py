"""Starting a run (a team or a checked config) and waiting for its end; shared by the routes."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import structlog
from massgen_proto.config import ConfigError, RunConfig, parse_config
from massgen_proto.events import TERMINAL_STATUSES
from massgen_proto.host_paths import host_path_problems
from massgen_proto.ids import new_run_id
from massgen_proto.messages import ChatMessage, CreateRun, ErrorReply
from massgen_proto.subjects import validate_token
from massgen_proto.summary import RunSummary

from ..errors import ApiError
from ..records import RunIndexEntry
from ..service import IdempotencyConflict, OrchestratorUnavailable
from ..sse import event_kind
from ..teams import Team
from .context import ApiContext

__all__ = [
    "check_config",
    "check_previous_run",
    "config_warnings",
    "named_team",
    "network_problems",
    "start_run",
    "wait_finished",
]

log = structlog.get_logger("api")


def named_team(ctx: ApiContext, name: str, *, path: str) -> Team:
    team = ctx.teams.get(name)
    if team is None:
        known = ", ".join(sorted(ctx.teams)) or "none configured"
        raise ApiError(
            404, f"unknown team {name!r} (teams: {known})", code="team_not_found",
            problems=[(path, "unknown team")],
        )  # fmt: skip
    return team


def check_config(ctx: ApiContext, config: dict[str, Any], path: str) -> None:
    """Validate a tenant's config, including the operator's endpoint policy and its
    rules for commands' network and paths on the server."""
    try:
        parsed = parse_config(config)
        refused = ctx.settings.endpoint_policy.problems(parsed)
        refused += ctx.settings.catalog.problems(parsed)
        if not ctx.settings.allow_command_network:
            refused += network_problems(parsed)
        if not ctx.settings.host_paths_allowed:
            refused += host_path_problems(parsed)
        if refused:
            raise ConfigError(refused)
    except ConfigError as error:
        problems = [(f"{path}.{p}" if p else path, m) for p, m in error.problems]
        raise ApiError(
            422, f"invalid config: {error}", code="invalid_config", problems=problems
        ) from None


def network_problems(config: RunConfig) -> list[tuple[str, str]]:
    """One problem per agent whose commands ask for the network, which a shared
    deployment refuses unless its operator allows it."""
    return [
        (
            f"agents[{index}].backend.command_line_docker_network_mode",
            f"commands with network ({agent.backend.command_line_docker_network_mode!r}) are "
            "not allowed by this API; use 'none', or ask its operator to allow them "
            "(MASSGEN_API_ALLOW_COMMAND_NETWORK)",
        )
        for index, agent in enumerate(config.agents)
        if agent.backend.command_network
    ]


def config_warnings(config: dict[str, Any]) -> list[str]:
    """Keys of a (valid) config that are accepted but not applied, one message each."""
    try:
        return parse_config(config).warnings()
    except ConfigError:
        return []  # refused elsewhere, with the reason


async def check_previous_run(ctx: ApiContext, tenant: str, run_id: str, path: str) -> str:
    """``run_id`` if a new run of ``tenant`` may start from its final workspace.

    Only the API knows whose a run is: the gateway copies whatever run the create
    request names, so this is the check that keeps one tenant out of another's files.

    Raises:
        ApiError: 422 no such run, 403 another tenant's, 409 still running.
    """
    try:
        validate_token(run_id, "run id")
    except ValueError:
        record = None
    else:
        record = await ctx.backend.get_record(run_id)
    if record is None:
        raise ApiError(
            422, f"no run {run_id!r} to start from", code="invalid_previous_run",
            problems=[(path, "unknown run")],
        )  # fmt: skip
    if record.tenant != tenant:
        raise ApiError(
            403, f"run {run_id!r} belongs to another tenant", code="forbidden",
            problems=[(path, "another tenant's run")],
        )  # fmt: skip
    summary = await ctx.backend.summary(run_id)
    if summary is None or summary.status not in TERMINAL_STATUSES:
        raise ApiError(
            409, f"run {run_id!r} is still running; start from it once it is over",
            code="previous_run_running", problems=[(path, "still running")],
        )  # fmt: skip
    return run_id


async def start_run(
    ctx: ApiContext,
    tenant: str,
    question: str,
    config: dict[str, Any],
    *,
    team: str | None,
    session_id: str | None = None,
    history: list[ChatMessage] | None = None,
    run_id: str | None = None,
    previous_run_id: str | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Create the run (``previous_run_id`` already checked: :func:`check_previous_run`).

    With ``idempotency_key`` the run id is derived from it and the tenant, so the same
    request sent again (its reply was lost) starts or finds the same run, never a second.
    """
    refusal = ctx.backend.usage.refusal(tenant)
    if refusal is not None:
        raise ApiError(429, refusal, code="tenant_limit")
    if idempotency_key is not None:
        digest = hashlib.sha256(f"{tenant}\0{idempotency_key}".encode()).hexdigest()
        run_id = digest[:16]
    run_id = run_id or new_run_id()
    record = RunIndexEntry(
        run_id=run_id, tenant=tenant, created_at=time.time(), question=question,
        team=team, session_id=session_id, previous_run_id=previous_run_id,
        warnings=config_warnings(config),
    )  # fmt: skip
    request = CreateRun(
        run_id=run_id, question=question, config=config, history=history or [],
        previous_run_id=previous_run_id,
    )  # fmt: skip
    try:
        reply = await ctx.backend.create_run(request, record, keyed=idempotency_key is not None)
    except OrchestratorUnavailable as error:
        raise ApiError(503, str(error), code="orchestrator_unavailable") from None
    except IdempotencyConflict:
        raise ApiError(
            409,
            "this Idempotency-Key was already used for another request",
            code="idempotency_conflict",
        ) from None
    if isinstance(reply, ErrorReply):
        status = 422 if reply.code == "bad_request" else 502
        raise ApiError(status, reply.error, code="run_refused")
    log.info("run.created", run_id=run_id, tenant=tenant, team=team, session_id=session_id)
    return run_id


async def wait_finished(ctx: ApiContext, run_id: str, limit: float) -> RunSummary:
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

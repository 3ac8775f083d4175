"""The team routes: the named teams configured on this server, and the caller's usage."""

from __future__ import annotations

import time

from fastapi import APIRouter

from ..models import TeamList, TeamView, UsageView
from ..usage import day_of
from .context import ApiContext, Ctx, Tenant

__all__ = ["router"]

router = APIRouter()


def _team_views(ctx: ApiContext) -> list[TeamView]:
    return [
        TeamView(name=t.name, description=t.description, agents=t.agents)
        for t in sorted(ctx.teams.values(), key=lambda t: t.name)
    ]


@router.get("/teams", response_model=TeamList, tags=["teams"])
async def list_teams(ctx: Ctx, tenant: Tenant) -> TeamList:
    """The named teams configured on this server."""
    return TeamList(data=_team_views(ctx))


@router.get("/usage", response_model=UsageView, tags=["teams"])
async def tenant_usage(ctx: Ctx, tenant: Tenant) -> UsageView:
    """What the caller's runs finished today (UTC) have used, against its daily limits.

    Counted only where daily limits are set (``MASSGEN_API_TENANT_DAILY_*``)."""
    usage = ctx.backend.usage
    tokens, cost = usage.used_today(tenant)
    return UsageView(
        tenant=tenant, day=day_of(time.time()), tokens=tokens, cost_usd=round(cost, 6),
        token_limit=usage.limits.tokens, cost_limit_usd=usage.limits.cost_usd,
        counted=usage.limits.any,
    )  # fmt: skip

"""What every ``/v1`` route depends on: the shared context and the caller's tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth import PUBLIC_TENANT, TokenTable
from ..errors import ApiError
from ..metrics import Metrics
from ..service import Backend
from ..settings import ApiSettings
from ..teams import Team

__all__ = ["ApiContext", "Ctx", "RunId", "Tenant", "context_of", "tenant_of"]


@dataclass
class ApiContext:
    """What the routes share: settings, the NATS adapter, teams, tokens, counters."""

    settings: ApiSettings
    backend: Backend
    teams: dict[str, Team]
    tokens: TokenTable
    metrics: Metrics


def context_of(request: Request) -> ApiContext:
    return request.app.state.ctx


_bearer = HTTPBearer(auto_error=False, description="A token configured on the server.")


async def tenant_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's tenant, from its bearer token (401 without a known one)."""
    tokens = context_of(request).tokens
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
Ctx = Annotated[ApiContext, Depends(context_of)]
RunId = Annotated[str, PathParam(max_length=100, description="Run id")]

"""The ``/v1`` routes: runs, SSE events, run files, teams, sessions, OpenAI-compatible
completions.

One module per resource (``runs``, ``files``, ``teams``, ``sessions``, ``completions``),
included here in that order under ``/v1``; ``context`` holds what they depend on (the
shared context, the caller's tenant), ``starting`` and ``views`` what they share.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..models import ErrorBody
from . import completions, files, runs, sessions, teams
from .context import ApiContext

__all__ = ["ApiContext", "router"]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (401, "Missing or unknown bearer token"),
        (403, "The run or session belongs to another tenant"),
        (404, "No such run, session or team"),
        (413, "Request body too large"),
        (422, "Malformed body or config; `error.path` / `detail[].path` point at the problem"),
        (429, "The tenant used up its daily token or dollar limit (the message says which)"),
        (503, "No orchestrator answered"),
    )
}


router = APIRouter(prefix="/v1", responses=ERRORS)

# Registered in this order: it is the order of the OpenAPI document.
for _resource in (runs, files, teams, sessions, completions):
    router.include_router(_resource.router)

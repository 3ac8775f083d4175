"""What the API stores about runs and sessions (in its two KV buckets). Pure data."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RunIndexEntry", "SessionRecord", "SessionTurn"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RunIndexEntry(_Record):
    """The API's index entry of a run it created (bucket ``API_RUNS_BUCKET``).

    Not the run itself: that is ``massgen_proto.record.RunRecord``, which the
    orchestrator writes to its own bucket.
    """

    run_id: str
    tenant: str
    created_at: float
    question: str
    team: str | None = None
    session_id: str | None = None
    previous_run_id: str | None = None
    """The run whose final workspace this one started from (checked: the same tenant's)."""
    status: str = "running"
    """Last known status; the run's events are the authority (see ``GET /v1/runs/{id}``)."""
    warnings: list[str] = Field(default_factory=list)
    """Config keys accepted but not applied (``RunConfig.warnings``)."""


class SessionTurn(_Record):
    """One question of a session and the run that answered it."""

    run_id: str
    question: str
    answer: str | None = None
    """The run's final answer once known (filled in lazily)."""
    status: str = "running"


class SessionRecord(_Record):
    """A multi-turn conversation with one team (bucket ``SESSIONS_BUCKET``)."""

    id: str
    tenant: str
    created_at: float
    team: str | None = None
    config: dict[str, Any] | None = None
    """The config used when no team was named."""
    turns: list[SessionTurn] = Field(default_factory=list)
    cleared_after: int = 0
    """``POST .../clear``: the first this many turns are forgotten (neither history nor
    workspace reaches later turns)."""

"""What other services may read about a run from the runs KV bucket: ``RunRecord``.

The orchestrator's ``RunState`` (services/orchestrator) is private and changes with the
state machine; it stores each run under the run id in ``massgen_runs``. This model is the
part of that JSON that the gateway (tools, turn capabilities, the winner) and the API
(status) rely on. Every field is required, so renaming one in ``RunState`` fails the
contract test (tests/unit/orchestrator/test_run_record.py) instead of another service
at run time; everything else in the stored JSON is ignored here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .config import RunConfig
from .events import RunStatus
from .messages import Phase

__all__ = ["AgentRecord", "RunRecord", "TurnRecord"]


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TurnRecord(_View):
    """An agent's current turn."""

    turn_id: str
    phase: Phase


class AgentRecord(_View):
    """One agent of the run, in config order."""

    agent_id: str
    label: str
    turn: TurnRecord | None


class RunRecord(_View):
    """A run as other services read it."""

    run_id: str
    status: RunStatus
    config: RunConfig
    winner_label: str | None
    """Label of the presenting (winning) agent, once chosen."""
    secret: str
    """Key of the run's turn capabilities (``ids.turn_token``); never shown to workers."""
    agents: list[AgentRecord]
    previous_run_id: str | None = None
    """The session's previous turn, whose final workspace the agents start from
    (``CreateRun.previous_run_id``). The one optional field: runs stored before it
    existed read as None; the contract test sets it, so a rename still fails there."""

"""Which worker reports are believed: the turn capability and the agent's current turn."""

from __future__ import annotations

import hmac

from massgen_proto.ids import turn_token
from massgen_proto.messages import Verdict, WorkerReport

from .state import AgentState, RunState

__all__ = ["current", "holds", "stale"]


def stale(turn_id: str) -> Verdict:
    return Verdict(
        status="stale",
        message=f"turn {turn_id} is no longer current (superseded, cancelled, or the run "
        "is over); stop working on it",
    )


def current(state: RunState, report: WorkerReport) -> AgentState | None:
    """The agent whose current turn the report is about, if the run is still going and
    the report carries that turn's capability."""
    if state.over or report.run_id != state.run_id or not holds(state, report):
        return None
    for agent in state.agents:
        if agent.turn is not None and agent.turn.turn_id == report.turn_id:
            return agent
    return None


def holds(state: RunState, report: WorkerReport) -> bool:
    """True when the report carries the capability of the turn it names (its turn's
    token; always, for runs without a secret)."""
    if not state.secret:
        return True
    return hmac.compare_digest(report.token, turn_token(state.secret, report.turn_id))

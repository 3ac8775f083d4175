"""Failures and trouble: failed turns, retries with backoff, an agent that gives up."""

from __future__ import annotations

from massgen_proto import events as ev
from massgen_proto import messages as msg
from massgen_proto.messages import Verdict

from .commands import Command
from .conclusion import complete
from .reports import current, stale
from .run_events import emit, event_ids
from .state import AgentState, RunState, Turn

__all__ = ["backoff_seconds", "fail_turn", "on_model_retrying", "on_turn_failed"]


def backoff_seconds(failures: int) -> float:
    """Delay before the retry after ``failures`` consecutive failed turns."""
    return min(0.5 * 2 ** (failures - 1), 8.0)


def fail_turn(
    state: RunState,
    agent: AgentState,
    turn: Turn,
    error: str,
    now: float,
    commands: list[Command],
) -> None:
    agent.turn = None
    agent.restart_pending = False
    agent.failures += 1
    agent.last_error = error
    agent.trouble = error
    gives_up = agent.failures >= state.config.orchestrator.max_agent_failures
    retry_in = None if gives_up else backoff_seconds(agent.failures)
    emit(
        commands,
        ev.AgentError(
            **event_ids(state, agent),
            ts=now,
            turn_id=turn.turn_id,
            error=error,
            failures=agent.failures,
            retry_in=retry_in,
        ),
    )
    if retry_in is None:
        agent.failed = True
        emit(commands, ev.AgentFailed(**event_ids(state, agent), ts=now, error=error))
    else:
        agent.retry_at = now + retry_in


def on_turn_failed(
    state: RunState, report: msg.TurnFailed, now: float, commands: list[Command]
) -> Verdict:
    agent = current(state, report)
    if agent is None or agent.turn is None:
        return stale(report.turn_id)
    if agent.turn.phase == "present":
        complete(state, agent, now, commands, None, f"presentation failed: {report.error}")
    else:
        fail_turn(state, agent, agent.turn, report.error, now, commands)
    return Verdict(status="accepted", message="failure recorded")


def on_model_retrying(state: RunState, report: msg.ModelRetrying) -> Verdict:
    """The agent's provider failed and the worker retries: mark it troubled, unless the
    error is a rate limit (transient by nature; the turn's own failure will count)."""
    agent = current(state, report)
    if agent is None:
        return stale(report.turn_id)
    if not report.rate_limited and agent.trouble != report.error:
        agent.trouble = report.error
    return Verdict(status="accepted")

"""What time alone changes: the run deadline, turn deadlines, retries coming due."""

from __future__ import annotations

from massgen_proto import events as ev

from .commands import Command
from .conclusion import complete, conclude, finish
from .failures import fail_turn
from .run_events import emit
from .state import RunState
from .turns import cancel_turn, stop_turns
from .votes import next_coordination

__all__ = ["advance_clock"]


def advance_clock(state: RunState, now: float, commands: list[Command]) -> None:
    """Apply whatever time alone changes: run deadline, turn deadlines, due retries."""
    if state.status == "running" and now >= state.deadline:
        _deadline(state, now, commands)
        return
    for agent in state.agents:
        turn = agent.turn
        if turn is None or now < turn.deadline or state.over:
            continue
        error = f"turn timed out after {_secs(turn.deadline - turn.published_at)}s"
        commands.append(cancel_turn(state, turn, error))
        if turn.phase == "present":
            complete(state, agent, now, commands, None, f"presentation failed: {error}")
        else:
            fail_turn(state, agent, turn, error, now, commands)
    if state.status != "running":
        return
    for agent in state.agents:
        if agent.retry_at is not None and agent.retry_at <= now and not agent.failed:
            next_coordination(state, agent, now, commands)


def _secs(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def _deadline(state: RunState, now: float, commands: list[Command]) -> None:
    stop_turns(state, commands, "run deadline reached")
    emit(commands, ev.DeadlineReached(run_id=state.run_id, ts=now, answers=len(state.answers)))
    if state.answers:
        conclude(state, now, commands)
    else:
        limit = _secs(state.config.timeout_settings.orchestrator_timeout_seconds)
        finish(state, "timed_out", f"no agent produced an answer within {limit}s", now, commands)

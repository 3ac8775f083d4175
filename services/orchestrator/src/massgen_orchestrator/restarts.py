"""Restarts after a new answer, batched while first answers are still being written."""

from __future__ import annotations

from massgen_proto import events as ev

from .commands import Command
from .run_events import emit, event_ids
from .state import AgentState, RunState
from .turns import can_answer, cancel_turn, publish
from .votes import next_coordination, only_vote

__all__ = ["release_waiting", "restart_others"]


def restart_others(
    state: RunState,
    answered: AgentState,
    version: str,
    now: float,
    commands: list[Command],
    finish_answered: bool,
) -> None:
    """Give the agent that answered its next turn, and restart the others on the new set.

    Args:
        finish_answered: ``coordination.FINISH_ANSWERED_TURNS``.
    """
    # The agent that answered takes its next turn at once (it may vote before the
    # others' first answers arrive; a repeat of its answer keeps that vote current),
    # unless that turn could only vote: then a single answer's vote is recorded without
    # a turn, and with several answers it waits, as the next first answer would undo it.
    # While first answers are still being written, agents whose turn a new answer makes
    # stale wait for them instead of restarting on each: one batch of restarts, not one
    # per answer (N agents: at most 3N + 1 turn requests, not O(N²)).
    batch = _first_answers_coming(state)
    if batch and only_vote(state, answered) is None and not can_answer(state, answered):
        answered.waiting = True
    else:
        next_coordination(state, answered, now, commands)
    interrupt = state.config.orchestrator.restart_policy == "interrupt"
    reason = f"new answer {version}"
    for other in state.agents:
        if other is answered or other.failed:
            continue
        writing_first = other.answers == 0 and other.turn is not None
        if other.turn is not None and not other.turn.started:
            # Still queued: replace it so that it shows the current answers (no work lost).
            commands.append(cancel_turn(state, other.turn, f"restart: {reason}"))
            emit(commands, ev.Restart(**event_ids(state, other), ts=now, reason=reason))
            other.turn = None
            if batch and not writing_first:
                other.waiting = True
            else:
                commands.append(publish(state, other, now, "coordinate"))
        elif other.turn is not None:
            # `finish` exists so every agent's first answer gets written: a turn that
            # may still produce one runs on. A turn of an agent that already answered
            # can only vote on (or improve) a set that just changed, so it restarts now.
            if not interrupt and (other.answers == 0 or finish_answered):
                other.restart_pending = True  # its turn finishes; then it restarts
                continue
            commands.append(cancel_turn(state, other.turn, f"restart: {reason}"))
            emit(
                commands,
                ev.Restart(**event_ids(state, other), ts=now, reason=reason, interrupted=True),
            )
            other.turn = None
            if batch and not writing_first:
                other.waiting = True
            else:
                commands.append(publish(state, other, now, "coordinate"))
        elif other.retry_at is None and not other.waiting:
            emit(commands, ev.Restart(**event_ids(state, other), ts=now, reason=reason))
            if batch:
                other.waiting = True
            else:
                commands.append(publish(state, other, now, "coordinate"))


def _first_answers_coming(state: RunState) -> bool:
    """Some live, healthy agent is still writing its first answer (turn running or queued)."""
    return any(
        not a.failed and a.answers == 0 and a.turn is not None and a.trouble is None
        for a in state.agents
    )


def release_waiting(state: RunState, now: float, commands: list[Command]) -> None:
    """Once no first answer is coming, every waiting agent gets its turn (one batch)."""
    if state.status != "running" or _first_answers_coming(state):
        return
    for agent in state.agents:
        if agent.waiting:
            agent.waiting = False
            if not agent.failed and agent.turn is None and agent.retry_at is None:
                next_coordination(state, agent, now, commands)

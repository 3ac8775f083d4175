"""Votes: recording an accepted vote, and the vote an agent could only cast.

An agent at its answer cap, with no tools beyond the workflow ones, facing a single
current answer, can do one thing in a coordination turn: vote for that answer. Such a
turn decides nothing, and on a local model it takes seconds of the CPU the other agents
are writing with; the vote is recorded at once instead (``next_coordination``).
"""

from __future__ import annotations

from massgen_proto import events as ev

from .commands import Command
from .run_events import emit, event_ids
from .state import AgentState, RunState, Vote
from .turns import can_answer, publish

__all__ = ["ONLY_ANSWER_REASON", "next_coordination", "only_vote", "record_vote"]

ONLY_ANSWER_REASON = "the only answer so far"
"""The reason of a vote recorded without a turn (``next_coordination``)."""


def record_vote(
    state: RunState,
    agent: AgentState,
    target: str,
    reason: str,
    now: float,
    commands: list[Command],
    same_answer: bool = False,
) -> None:
    """Make ``agent``'s vote for ``target`` current (the caller checked the target)."""
    voted_for = state.by_label(target)
    assert voted_for is not None, target  # only labels with answers are voted for
    agent.vote = Vote(target=target, reason=reason, answer_set_version=state.answer_set_version)
    agent.turn = None
    agent.failures = 0
    agent.trouble = None
    agent.restart_pending = False
    emit(
        commands,
        ev.VoteAccepted(
            **event_ids(state, agent),
            ts=now,
            target=target,
            target_agent=voted_for.agent_id,
            reason=reason,
            same_answer=same_answer,
        ),
    )


def only_vote(state: RunState, agent: AgentState) -> str | None:
    """The label ``agent``'s next coordination turn could only vote for, or None when the
    turn has a choice (it may answer, has other tools, or there are several answers)."""
    if can_answer(state, agent) or state.config.uses_tools(state.agent_config(agent)):
        return None
    labels = list(state.latest_answers())
    return labels[0] if len(labels) == 1 else None


def next_coordination(
    state: RunState, agent: AgentState, now: float, commands: list[Command]
) -> None:
    """Give ``agent`` its next coordination turn, or record the vote it could only cast."""
    target = only_vote(state, agent)
    if target is None:
        commands.append(publish(state, agent, now, "coordinate"))
    else:
        agent.retry_at = None
        agent.waiting = False
        record_vote(state, agent, target, ONLY_ANSWER_REASON, now, commands)

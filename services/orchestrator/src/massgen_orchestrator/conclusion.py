"""Ending coordination: when it settles, the winner, its presentation and the run's end."""

from __future__ import annotations

from typing import Literal

from massgen_proto import events as ev
from massgen_proto import messages as msg
from massgen_proto.code_text import answer_code, restore_task_docstrings
from massgen_proto.messages import Verdict

from .commands import Command
from .judging import (
    agreement,
    best_checked,
    check_problem,
    presentation_problem,
    unchecked_change,
    unsound,
)
from .reports import current, stale
from .restarts import release_waiting
from .run_events import emit, event_ids
from .state import TROUBLE_GRACE_SECONDS, AgentState, RunState
from .turns import cancel_turn, publish

__all__ = [
    "agent_named",
    "complete",
    "conclude",
    "finish",
    "on_presentation",
    "settle",
    "winner_of",
]


def winner_of(state: RunState) -> tuple[str, dict[str, int]]:
    """Pick the winner: most current votes; ties go to the answer the other answers agree
    with most (``judging.agreement``), then to the earliest in config order.

    An answer whose code cannot be right (``judging.unsound``: code that does not parse,
    or that defines none of the task's functions) never wins while a sound answer
    exists, as a failed agent never wins while a live agent has an answer. Where answers'
    code was run against the task's own examples, only the answers passing the most of
    them can win (``best_checked``; an answer with code whose check could not be had
    stays in). With no votes at all, agreement and then config
    order decide.

    Returns:
        ``(winner_label, votes)`` with votes received per label that has an answer.

    Raises:
        ValueError: when no answer exists.
    """
    latest = state.latest_answers()
    if not latest:
        raise ValueError(f"run {state.run_id} has no answer to pick a winner from")
    # Failed agents never win while a live agent has an answer.
    live = [label for label in latest if not agent_named(state, label).failed]
    counts = {label: 0 for label in live or latest}
    for agent in state.agents:
        vote = agent.vote
        if not agent.failed and vote and vote.answer_set_version == state.answer_set_version:
            if vote.target in counts:
                counts[vote.target] += 1
    texts = {label: latest[label].content for label in counts}
    sound = {label: unsound(text, state.question) is None for label, text in texts.items()}
    pool = [label for label in counts if sound[label]] or list(counts)
    checks = {label: latest[label].check for label in pool}
    unchecked = [label for label in pool if checks[label] is None and answer_code(texts[label])]
    pool = best_checked(pool, checks, unchecked)
    best = max(counts[label] for label in pool)
    tied = [label for label in pool if counts[label] == best]
    if len(tied) > 1:
        score = {
            label: agreement(texts[label], [texts[o] for o in pool if o != label]) for label in tied
        }
        top = max(score.values())
        tied = [label for label in tied if score[label] == top]
    return tied[0], counts


def agent_named(state: RunState, label: str) -> AgentState:
    agent = state.by_label(label)
    assert agent is not None, label  # labels in a run's answers are its agents'
    return agent


def _voted(agent: AgentState, version: int) -> bool:
    """The agent's latest action is a vote on answer set ``version`` and it has no turn."""
    vote = agent.vote
    return (
        vote is not None
        and vote.answer_set_version == version
        and agent.turn is None
        and agent.retry_at is None
    )


def settle(state: RunState, now: float, commands: list[Command]) -> None:
    """End coordination when nobody is left, or when every live agent has voted.

    An agent whose provider keeps failing (``trouble``) stops counting once every other
    live agent has voted and ``TROUBLE_GRACE_SECONDS`` have passed since: the healthy
    agents' consensus is not held up by it. Rate limits never make an agent troubled.
    """
    if state.status != "running":
        return
    release_waiting(state, now, commands)
    live = [a for a in state.taking_part() if not a.failed]
    if not live:
        errors = "; ".join(f"{a.label} ({a.agent_id}): {a.last_error}" for a in state.taking_part())
        if state.answers:
            conclude(state, now, commands, f"every agent failed ({errors})")
        else:
            finish(state, "failed", f"every agent failed: {errors}", now, commands)
        return
    version = state.answer_set_version
    pending = [a for a in live if not _voted(a, version)]
    if not pending:
        state.waiting_since = None
        conclude(state, now, commands)
        return
    if len(pending) == len(live) or any(a.trouble is None for a in pending):
        state.waiting_since = None
        return
    if state.waiting_since is None:
        state.waiting_since = now
    if now < state.waiting_since + TROUBLE_GRACE_SECONDS:
        return
    for agent in pending:
        if agent.turn is not None:
            commands.append(cancel_turn(state, agent.turn, "left out: provider failing"))
            agent.turn = None
        agent.retry_at = None
        emit(
            commands, ev.AgentExcluded(**event_ids(state, agent), ts=now, error=agent.trouble or "")
        )
    state.waiting_since = None
    conclude(state, now, commands)


def finish(
    state: RunState,
    status: Literal["completed", "timed_out", "failed", "cancelled"],
    message: str,
    now: float,
    commands: list[Command],
    winner: str | None = None,
) -> None:
    state.status = status
    state.message = message
    emit(commands, ev.RunFinished(
        run_id=state.run_id, ts=now, status=status, message=message, winner=winner,
        tokens=sum(a.tokens for a in state.agents),
        cost_usd=round(sum(a.cost_usd for a in state.agents), 6),
    ))  # fmt: skip


def conclude(state: RunState, now: float, commands: list[Command], note: str = "") -> None:
    """Pick the winner and let it present; an agent that cannot present (failed, or its
    provider failing) has its stored answer taken as the final answer instead."""
    label, votes = winner_of(state)
    winner = agent_named(state, label)
    emit(
        commands,
        ev.Consensus(
            run_id=state.run_id, ts=now, winner=winner.agent_id, winner_label=label, votes=votes
        ),
    )
    state.status = "presenting"
    state.winner_label = label
    if winner.failed or winner.trouble is not None:
        why = "failed" if winner.failed else f"its provider is failing: {winner.trouble}"
        note = f"{note}; " if note else ""
        complete(state, winner, now, commands, None, f"{note}{label} cannot present ({why})")
        return
    emit(commands, ev.PresentationStarted(**event_ids(state, winner), ts=now))
    commands.append(publish(state, winner, now, "present"))


def complete(
    state: RunState,
    agent: AgentState,
    now: float,
    commands: list[Command],
    content: str | None,
    note: str = "",
) -> None:
    """Finish the run with the presentation, or (``content`` None) the stored answer."""
    agent.turn = None
    fallback = content is None
    if content is None:
        stored = state.latest_answers()[agent.label]
        content = stored.content
        note = f"{note}; " if note else ""
        note += f"the stored answer {stored.version} was used"
    state.final_answer = content
    emit(
        commands,
        ev.FinalAnswer(**event_ids(state, agent), ts=now, content=content, fallback=fallback),
    )
    finish(state, "completed", note, now, commands, winner=agent.agent_id)


def on_presentation(
    state: RunState, report: msg.PresentationFinished, now: float, commands: list[Command]
) -> Verdict:
    """Finish the run with the presentation, or with the winner's stored answer when the
    presentation lost it (``judging.presentation_problem``: empty, far shorter, code
    without the answer's functions; ``judging.check_problem``: code passing fewer of the
    task's examples than the answer's; ``judging.unchecked_change``: code changed where
    no example of the task confirms it); the run's message says why."""
    agent = current(state, report)
    if agent is None or agent.turn is None or agent.turn.phase != "present":
        return stale(report.turn_id)
    # A docstring shown elided (prompts.answers_block) is put back in the final answer.
    content = restore_task_docstrings(report.content.strip(), state.question)
    answer = state.latest_answers()[agent.label]
    problem = (
        presentation_problem(content, answer.content)
        or check_problem(report.check, answer.check)
        or unchecked_change(content, answer.content, state.question, report.check)
    )
    complete(state, agent, now, commands, None if problem else content, problem or "")
    return Verdict(status="accepted")

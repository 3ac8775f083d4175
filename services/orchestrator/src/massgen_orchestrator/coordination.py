"""The coordination state machine: PROTOCOL.md as a pure function.

``new_run`` starts a run and ``apply(state, message, now)`` moves it on by one input
(a worker report, a cancel request, or a ``Tick`` of time passing). Both return the
new state and the commands the adapter must execute, in order. Nothing here does
I/O, reads a clock or draws random numbers: ``now`` always comes in.

This module is the entry point and the dispatch; each job lives in a module of its own:
``turns`` (building and cancelling turns), ``submissions`` (answers and votes),
``restarts`` (restarts after a new answer), ``conclusion`` (settling, the winner, the
presentation, the run's end), ``failures`` (failed turns and retries), ``clock``
(deadlines), ``budget`` (usage and the run budget), ``reports`` (which reports are
believed), ``judging`` (the workflow calls of one response).

Conventions:
    * Every worker report gets exactly one ``ReplyVerdict``, always the **last**
      command, so every event of the transition is out before the worker goes on.
    * Time-driven changes (run deadline, turn deadlines, retries coming due) are
      applied first on *every* input, not only on ``Tick``: a report that arrives
      after a deadline sees the run as the deadline left it.
    * Agents are named by label in everything an agent reads (prompts, tool enums,
      verdict texts); events carry the config id too, for people.
"""

from __future__ import annotations

from typing import assert_never

from massgen_proto import events as ev
from massgen_proto import messages as msg
from massgen_proto.config import RunConfig
from massgen_proto.ids import label_for, stream_tag, turn_token
from massgen_proto.messages import CancelRun, ChatMessage, Verdict, WorkerReport

from .budget import account, keep_to_budget, over_budget
from .clock import advance_clock
from .commands import Command, EmitEvent, ReplyVerdict, Tick
from .conclusion import finish, on_presentation, settle, winner_of
from .failures import backoff_seconds, on_model_retrying, on_turn_failed
from .judging import NOVELTY_LIMITS, AnswerCall, Rejection, VoteCall, judge, normalise, similarity
from .reports import current, holds, stale
from .run_events import emit, event_ids
from .state import AgentState, RunState
from .submissions import on_submission
from .turns import MAX_ATTEMPTS, PRESENTATION_FLOOR_SECONDS, cancel_turn, publish

__all__ = [
    "MAX_ATTEMPTS",
    "NOVELTY_LIMITS",
    "PRESENTATION_FLOOR_SECONDS",
    "AnswerCall",
    "Rejection",
    "VoteCall",
    "apply",
    "backoff_seconds",
    "judge",
    "new_run",
    "normalise",
    "holds",
    "over_budget",
    "similarity",
    "turn_token",
    "winner_of",
]

FINISH_ANSWERED_TURNS = False
"""Under ``restart_policy: finish``, let a running turn of an agent that already has an
answer finish too (PROTOCOL.md's literal rule). Off: such a turn restarts at once; the
measurement behind this choice is bench/bench_restart_policy.py (see BENCHMARKS.md)."""
# Read here at each transition (not in restarts.py) because the bench flips it on this
# module.


def new_run(
    run_id: str,
    question: str,
    config: RunConfig,
    history: list[ChatMessage],
    now: float,
    secret: str = "",
    previous_run_id: str | None = None,
) -> tuple[RunState, list[Command]]:
    """Start a run: announce it and publish every agent's first coordination turn (only
    the first agent's under ``skip_coordination_rounds``).

    Args:
        run_id: the run's id.
        question: the user's task.
        config: the validated run config.
        history: earlier turns of a multi-turn session (may be empty).
        now: epoch seconds.
        secret: the key of the run's turn capabilities (random, from the adapter).
        previous_run_id: the session's previous turn (its final workspace seeds the
            agents' workspaces; the gateway reads it from the stored run).
    """
    agents = [AgentState(agent_id=a.id, label=label_for(i)) for i, a in enumerate(config.agents)]
    state = RunState(
        run_id=run_id,
        question=question,
        history=list(history),
        previous_run_id=previous_run_id,
        config=config,
        created_at=now,
        deadline=now + config.timeout_settings.orchestrator_timeout_seconds,
        agents=agents,
        secret=secret,
    )
    infos = [
        ev.AgentInfo(
            id=cfg.id,
            label=agent.label,
            provider=cfg.backend.provider,
            model=cfg.backend.model or "",
        )
        for agent, cfg in zip(agents, config.agents, strict=True)
    ]
    commands: list[Command] = [
        EmitEvent(
            event=ev.RunCreated(
                run_id=run_id, ts=now, question=question, agents=infos, deadline=state.deadline
            )
        )
    ]
    commands += [publish(state, agent, now, "coordinate") for agent in state.taking_part()]
    return state, commands


_USAGE_REPORTS = (msg.WorkflowSubmission, msg.TurnFailed, msg.PresentationFinished, msg.TurnUsage)
"""The reports that carry their turn's usage."""


def apply(
    state: RunState, message: WorkerReport | CancelRun | Tick, now: float
) -> tuple[RunState, list[Command]]:
    """Apply one input to a run.

    Args:
        state: the run as persisted; it is not modified.
        message: a worker report, a cancel request, or a Tick.
        now: epoch seconds.

    Returns:
        The new state and the commands to execute in order. A worker report gets
        exactly one ``ReplyVerdict``, as the last command; the others get none.
    """
    state = _copy(state)
    commands: list[Command] = []
    advance_clock(state, now, commands)
    settle(state, now, commands)
    verdict: Verdict | None = None
    counted = (
        isinstance(message, _USAGE_REPORTS)
        and message.usage is not None
        and account(state, message, message.usage)
    )
    match message:
        case Tick():
            pass
        case CancelRun():
            _cancel(state, message, now, commands)
        case msg.TurnStarted():
            verdict = _on_turn_started(state, message, now, commands)
        case msg.WorkflowSubmission():
            verdict = on_submission(state, message, now, commands, FINISH_ANSWERED_TURNS)
        case msg.TurnFailed():
            verdict = on_turn_failed(state, message, now, commands)
        case msg.PresentationFinished():
            verdict = on_presentation(state, message, now, commands)
        case msg.ModelRetrying():
            verdict = on_model_retrying(state, message)
        case msg.TurnUsage():
            verdict = Verdict(status="accepted") if counted else stale(message.turn_id)
        case _:
            assert_never(message)
    settle(state, now, commands)
    keep_to_budget(state, now, commands)
    if verdict is not None:
        commands.append(ReplyVerdict(verdict=verdict))
    return state, commands


def _copy(state: RunState) -> RunState:
    # Answers, votes, turns and records are frozen and only ever replaced, and the
    # config and history are never changed, so copying the containers is enough.
    new = state.model_copy()
    new.agents = [agent.model_copy() for agent in state.agents]
    new.answers = list(state.answers)
    new.turn_usage = dict(state.turn_usage)
    return new


def _cancel(state: RunState, request: CancelRun, now: float, commands: list[Command]) -> None:
    if state.over or request.run_id != state.run_id:
        return
    for agent in state.agents:
        if agent.turn is not None:
            commands.append(cancel_turn(state, agent.turn, request.reason))
            agent.turn = None
        agent.retry_at = None
        agent.waiting = False
    finish(state, "cancelled", request.reason, now, commands)


def _on_turn_started(
    state: RunState, report: msg.TurnStarted, now: float, commands: list[Command]
) -> Verdict:
    agent = current(state, report)
    if agent is None or agent.turn is None:
        return stale(report.turn_id)
    turn = agent.turn
    if turn.started and turn.worker == report.worker and report.delivery <= turn.delivery:
        return Verdict(status="accepted")  # the same report redelivered
    if turn.started and turn.worker != report.worker and report.delivery <= 1:
        # A first delivery of a turn another worker already runs: the request was
        # published twice (an outbox replayed after the stream's dedupe window).
        return stale(report.turn_id)
    delivery = max(report.delivery, turn.delivery + 1)
    record = agent.last_submission
    if delivery > 1 and record is not None and record.turn_id == turn.turn_id:
        # A new worker starts the turn's attempts from 1 again.
        agent.last_submission = None
    agent.turn = turn.model_copy(
        update={"started": True, "worker": report.worker, "delivery": delivery}
    )
    emit(
        commands,
        ev.TurnStarted(
            **event_ids(state, agent),
            ts=now,
            turn_id=turn.turn_id,
            phase=turn.phase,
            number=turn.number,
            delivery=delivery,
            stream_tag=stream_tag(turn_token(state.secret, turn.turn_id)) if state.secret else "",
        ),
    )
    return Verdict(status="accepted")

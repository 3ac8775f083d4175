"""The coordination state machine: PROTOCOL.md as a pure function.

``new_run`` starts a run and ``apply(state, message, now)`` moves it on by one input
(a worker report, a cancel request, or a ``Tick`` of time passing). Both return the
new state and the commands the adapter must execute, in order. Nothing here does
I/O, reads a clock or draws random numbers: ``now`` always comes in.

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

import hashlib
import hmac
from typing import Any, Literal, assert_never

from massgen_proto import events as ev
from massgen_proto import messages as msg
from massgen_proto.config import RunConfig
from massgen_proto.ids import answer_version, label_for, turn_id_for
from massgen_proto.messages import CancelRun, ChatMessage, Verdict, WorkerReport

from . import prompts
from .commands import CancelTurnCommand, Command, EmitEvent, PublishTurn, ReplyVerdict, Tick
from .judging import (
    NOVELTY_LIMITS,
    AnswerCall,
    Rejection,
    SameAnswer,
    VoteCall,
    judge,
    normalise,
    repeats,
    similarity,
)
from .state import TROUBLE_GRACE_SECONDS, AgentState, Answer, RunState, SubmissionRecord, Turn, Vote

__all__ = [
    "NOVELTY_LIMITS",
    "AnswerCall",
    "Rejection",
    "VoteCall",
    "apply",
    "backoff_seconds",
    "judge",
    "new_run",
    "normalise",
    "holds",
    "similarity",
    "turn_token",
    "winner_of",
]

MAX_ATTEMPTS = 3
"""Model responses a worker may try within one turn before the turn fails."""

FINISH_ANSWERED_TURNS = False
"""Under ``restart_policy: finish``, let a running turn of an agent that already has an
answer finish too (PROTOCOL.md's literal rule). Off: such a turn restarts at once; the
measurement behind this choice is bench/bench_restart_policy.py (see BENCHMARKS.md)."""

PRESENTATION_FLOOR_SECONDS = 30.0
"""The least time a presentation gets when it starts at (or near) the run deadline."""


def turn_token(secret: str, turn_id: str) -> str:
    """The capability of turn ``turn_id``: only holders of the turn request know it.

    Derived from the run's secret (kept in the run state, which workers cannot read), so
    the state machine stays deterministic and every replica computes the same token.
    """
    return hmac.new(secret.encode(), turn_id.encode(), hashlib.sha256).hexdigest()[:32]


def backoff_seconds(failures: int) -> float:
    """Delay before the retry after ``failures`` consecutive failed turns."""
    return min(0.5 * 2 ** (failures - 1), 8.0)


def winner_of(state: RunState) -> tuple[str, dict[str, int]]:
    """Pick the winner: most current votes, ties to the earliest in config order.

    With no votes at all, the earliest agent in config order that has an answer wins.

    Returns:
        ``(winner_label, votes)`` with votes received per label that has an answer.

    Raises:
        ValueError: when no answer exists.
    """
    latest = state.latest_answers()
    if not latest:
        raise ValueError(f"run {state.run_id} has no answer to pick a winner from")
    # Failed agents never win while a live agent has an answer.
    live = [label for label in latest if not _agent(state, label).failed]
    counts = {label: 0 for label in live or latest}
    for agent in state.agents:
        vote = agent.vote
        if not agent.failed and vote and vote.answer_set_version == state.answer_set_version:
            if vote.target in counts:
                counts[vote.target] += 1
    best = max(counts.values())
    return next(label for label, n in counts.items() if n == best), counts


def _agent(state: RunState, label: str) -> AgentState:
    agent = state.by_label(label)
    assert agent is not None, label  # labels in a run's answers are its agents'
    return agent


# -- entry points -------------------------------------------------------------------------


def new_run(
    run_id: str,
    question: str,
    config: RunConfig,
    history: list[ChatMessage],
    now: float,
    secret: str = "",
) -> tuple[RunState, list[Command]]:
    """Start a run: announce it and publish every agent's first coordination turn.

    Args:
        run_id: the run's id.
        question: the user's task.
        config: the validated run config.
        history: earlier turns of a multi-turn session (may be empty).
        now: epoch seconds.
        secret: the key of the run's turn capabilities (random, from the adapter).
    """
    agents = [AgentState(agent_id=a.id, label=label_for(i)) for i, a in enumerate(config.agents)]
    state = RunState(
        run_id=run_id,
        question=question,
        history=list(history),
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
    commands += [_publish(state, agent, now, "coordinate") for agent in state.agents]
    return state, commands


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
    _advance_clock(state, now, commands)
    _settle(state, now, commands)
    verdict: Verdict | None = None
    match message:
        case Tick():
            pass
        case CancelRun():
            _cancel(state, message, now, commands)
        case msg.TurnStarted():
            verdict = _on_turn_started(state, message, now, commands)
        case msg.WorkflowSubmission():
            verdict = _on_submission(state, message, now, commands)
        case msg.TurnFailed():
            verdict = _on_turn_failed(state, message, now, commands)
        case msg.PresentationFinished():
            verdict = _on_presentation(state, message, now, commands)
        case msg.ModelRetrying():
            verdict = _on_model_retrying(state, message)
        case _:
            assert_never(message)
    _settle(state, now, commands)
    if verdict is not None:
        commands.append(ReplyVerdict(verdict=verdict))
    return state, commands


# -- transitions ------------------------------------------------------------------------


def _copy(state: RunState) -> RunState:
    # Answers, votes, turns and records are frozen and only ever replaced, and the
    # config and history are never changed, so copying the containers is enough.
    new = state.model_copy()
    new.agents = [agent.model_copy() for agent in state.agents]
    new.answers = list(state.answers)
    return new


def _stale(turn_id: str) -> Verdict:
    return Verdict(
        status="stale",
        message=f"turn {turn_id} is no longer current (superseded, cancelled, or the run "
        "is over); stop working on it",
    )


def _current(state: RunState, report: WorkerReport) -> AgentState | None:
    """The agent whose current turn the report is about, if the run is still going and
    the report carries that turn's capability."""
    if state.over or report.run_id != state.run_id or not _holds(state, report):
        return None
    for agent in state.agents:
        if agent.turn is not None and agent.turn.turn_id == report.turn_id:
            return agent
    return None


def holds(state: RunState, report: WorkerReport) -> bool:
    """True when the report carries the capability of the turn it names."""
    return _holds(state, report)


def _holds(state: RunState, report: WorkerReport) -> bool:
    """True when the report carries its turn's token (always, for runs without a secret)."""
    if not state.secret:
        return True
    return hmac.compare_digest(report.token, turn_token(state.secret, report.turn_id))


def _ids(state: RunState, agent: AgentState) -> dict[str, Any]:
    return {"run_id": state.run_id, "agent": agent.agent_id, "label": agent.label}


def _emit(commands: list[Command], event: ev.RunEvent) -> None:
    commands.append(EmitEvent(event=event))


def _cancel_turn(state: RunState, turn: Turn, reason: str) -> CancelTurnCommand:
    return CancelTurnCommand(
        cancel=msg.CancelTurn(run_id=state.run_id, turn_id=turn.turn_id, reason=reason)
    )


def _secs(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def _can_answer(state: RunState, agent: AgentState) -> bool:
    cap = state.config.orchestrator.max_new_answers_per_agent
    return cap is None or agent.answers < cap


def _publish(state: RunState, agent: AgentState, now: float, phase: msg.Phase) -> PublishTurn:
    """Build the agent's next turn, make it current, and return the command publishing it."""
    cfg = state.agent_config(agent)
    backend = cfg.backend
    number = agent.turns + 1
    turn_id = turn_id_for(state.run_id, agent.label, number)
    timeout = state.config.timeout_settings.turn_timeout_seconds
    answers = {label: a.content for label, a in state.latest_answers().items()}
    if phase == "coordinate":
        can_answer = _can_answer(state, agent)
        tools = prompts.workflow_tools(list(answers), can_answer)
        messages = prompts.coordination_messages(
            task=state.question,
            answers=answers,
            system_message=cfg.system_message,
            history=state.history,
            voting_sensitivity=state.config.orchestrator.voting_sensitivity,
            can_answer=can_answer,
            remaining_seconds=state.deadline - now,
            answers_budget=state.config.orchestrator.answers_prompt_chars,
        )
        deadline = min(now + timeout, state.deadline)
    else:
        tools = []
        version = state.answer_set_version
        reasons = [
            a.vote.reason
            for a in state.agents
            if a.vote and a.vote.target == agent.label and a.vote.answer_set_version == version
        ]
        messages = prompts.presentation_messages(
            task=state.question,
            answers=answers,
            winner_label=agent.label,
            vote_reasons=reasons,
            system_message=cfg.system_message,
            history=state.history,
            answers_budget=state.config.orchestrator.answers_prompt_chars,
        )
        # The presentation ends by the run deadline, but never gets less than a floor
        # (it may start at the deadline, with the best answer so far).
        floor = min(timeout, PRESENTATION_FLOOR_SECONDS)
        deadline = min(now + timeout, max(state.deadline, now + floor))
    request = msg.TurnRequest(
        run_id=state.run_id,
        turn_id=turn_id,
        agent_id=agent.agent_id,
        label=agent.label,
        phase=phase,
        number=number,
        answer_set_version=state.answer_set_version,
        backend=msg.BackendSpec(
            type=backend.type,
            model=backend.model or "",
            base_url=backend.base_url,
            api_key=backend.api_key,
            temperature=backend.temperature,
            max_tokens=backend.max_tokens,
            params=backend.passthrough_params(),
        ),
        messages=messages,
        tools=tools,
        deadline=deadline,
        max_attempts=MAX_ATTEMPTS,
        max_tool_calls=state.config.orchestrator.max_tool_calls_per_turn,
        uses_tools=bool(
            backend.mcp_servers or backend.cwd or state.config.orchestrator.context_paths
        ),
        token=turn_token(state.secret, turn_id) if state.secret else "",
    )
    agent.turns = number
    agent.turn = Turn(
        turn_id=turn_id,
        number=number,
        phase=phase,
        answer_set_version=state.answer_set_version,
        tools=tuple(tool["function"]["name"] for tool in tools),
        published_at=now,
        deadline=deadline,
    )
    agent.retry_at = None
    agent.restart_pending = False
    agent.waiting = False
    return PublishTurn(provider=backend.provider, request=request)


def _advance_clock(state: RunState, now: float, commands: list[Command]) -> None:
    """Apply whatever time alone changes: run deadline, turn deadlines, due retries."""
    if state.status == "running" and now >= state.deadline:
        _deadline(state, now, commands)
        return
    for agent in state.agents:
        turn = agent.turn
        if turn is None or now < turn.deadline or state.over:
            continue
        error = f"turn timed out after {_secs(turn.deadline - turn.published_at)}s"
        commands.append(_cancel_turn(state, turn, error))
        if turn.phase == "present":
            _complete(state, agent, now, commands, None, f"presentation failed: {error}")
        else:
            _fail_turn(state, agent, turn, error, now, commands)
    if state.status != "running":
        return
    for agent in state.agents:
        if agent.retry_at is not None and agent.retry_at <= now and not agent.failed:
            commands.append(_publish(state, agent, now, "coordinate"))


def _voted(agent: AgentState, version: int) -> bool:
    """The agent's latest action is a vote on answer set ``version`` and it has no turn."""
    vote = agent.vote
    return (
        vote is not None
        and vote.answer_set_version == version
        and agent.turn is None
        and agent.retry_at is None
    )


def _settle(state: RunState, now: float, commands: list[Command]) -> None:
    """End coordination when nobody is left, or when every live agent has voted.

    An agent whose provider keeps failing (``trouble``) stops counting once every other
    live agent has voted and ``TROUBLE_GRACE_SECONDS`` have passed since: the healthy
    agents' consensus is not held up by it. Rate limits never make an agent troubled.
    """
    if state.status != "running":
        return
    _release_waiting(state, now, commands)
    live = [a for a in state.agents if not a.failed]
    if not live:
        errors = "; ".join(f"{a.label} ({a.agent_id}): {a.last_error}" for a in state.agents)
        if state.answers:
            _conclude(state, now, commands, f"every agent failed ({errors})")
        else:
            _finish(state, "failed", f"every agent failed: {errors}", now, commands)
        return
    version = state.answer_set_version
    pending = [a for a in live if not _voted(a, version)]
    if not pending:
        state.waiting_since = None
        _conclude(state, now, commands)
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
            commands.append(_cancel_turn(state, agent.turn, "left out: provider failing"))
            agent.turn = None
        agent.retry_at = None
        _emit(commands, ev.AgentExcluded(**_ids(state, agent), ts=now, error=agent.trouble or ""))
    state.waiting_since = None
    _conclude(state, now, commands)


def _finish(
    state: RunState,
    status: Literal["completed", "timed_out", "failed", "cancelled"],
    message: str,
    now: float,
    commands: list[Command],
    winner: str | None = None,
) -> None:
    state.status = status
    state.message = message
    _emit(
        commands,
        ev.RunFinished(run_id=state.run_id, ts=now, status=status, message=message, winner=winner),
    )


def _conclude(state: RunState, now: float, commands: list[Command], note: str = "") -> None:
    """Pick the winner and let it present; an agent that cannot present (failed, or its
    provider failing) has its stored answer taken as the final answer instead."""
    label, votes = winner_of(state)
    winner = _agent(state, label)
    _emit(
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
        _complete(state, winner, now, commands, None, f"{note}{label} cannot present ({why})")
        return
    _emit(commands, ev.PresentationStarted(**_ids(state, winner), ts=now))
    commands.append(_publish(state, winner, now, "present"))


def _complete(
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
    _emit(
        commands, ev.FinalAnswer(**_ids(state, agent), ts=now, content=content, fallback=fallback)
    )
    _finish(state, "completed", note, now, commands, winner=agent.agent_id)


def _deadline(state: RunState, now: float, commands: list[Command]) -> None:
    for agent in state.agents:
        if agent.turn is not None:
            commands.append(_cancel_turn(state, agent.turn, "run deadline reached"))
            agent.turn = None
        agent.retry_at = None
        agent.restart_pending = False
        agent.waiting = False
    _emit(commands, ev.DeadlineReached(run_id=state.run_id, ts=now, answers=len(state.answers)))
    if state.answers:
        _conclude(state, now, commands)
    else:
        limit = _secs(state.config.timeout_settings.orchestrator_timeout_seconds)
        _finish(state, "timed_out", f"no agent produced an answer within {limit}s", now, commands)


def _fail_turn(
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
    _emit(
        commands,
        ev.AgentError(
            **_ids(state, agent),
            ts=now,
            turn_id=turn.turn_id,
            error=error,
            failures=agent.failures,
            retry_in=retry_in,
        ),
    )
    if retry_in is None:
        agent.failed = True
        _emit(commands, ev.AgentFailed(**_ids(state, agent), ts=now, error=error))
    else:
        agent.retry_at = now + retry_in


def _cancel(state: RunState, request: CancelRun, now: float, commands: list[Command]) -> None:
    if state.over or request.run_id != state.run_id:
        return
    for agent in state.agents:
        if agent.turn is not None:
            commands.append(_cancel_turn(state, agent.turn, request.reason))
            agent.turn = None
        agent.retry_at = None
        agent.waiting = False
    _finish(state, "cancelled", request.reason, now, commands)


def _on_turn_started(
    state: RunState, report: msg.TurnStarted, now: float, commands: list[Command]
) -> Verdict:
    agent = _current(state, report)
    if agent is None or agent.turn is None:
        return _stale(report.turn_id)
    turn = agent.turn
    if turn.started and turn.worker == report.worker and report.delivery <= turn.delivery:
        return Verdict(status="accepted")  # the same report redelivered
    if turn.started and turn.worker != report.worker and report.delivery <= 1:
        # A first delivery of a turn another worker already runs: the request was
        # published twice (an outbox replayed after the stream's dedupe window).
        return _stale(report.turn_id)
    delivery = max(report.delivery, turn.delivery + 1)
    record = agent.last_submission
    if delivery > 1 and record is not None and record.turn_id == turn.turn_id:
        # A new worker starts the turn's attempts from 1 again.
        agent.last_submission = None
    agent.turn = turn.model_copy(
        update={"started": True, "worker": report.worker, "delivery": delivery}
    )
    _emit(
        commands,
        ev.TurnStarted(
            **_ids(state, agent),
            ts=now,
            turn_id=turn.turn_id,
            phase=turn.phase,
            number=turn.number,
            delivery=delivery,
        ),
    )
    return Verdict(status="accepted")


def _on_submission(
    state: RunState, report: msg.WorkflowSubmission, now: float, commands: list[Command]
) -> Verdict:
    for candidate in state.agents:
        record = candidate.last_submission
        if record and record.turn_id == report.turn_id and record.attempt == report.attempt:
            if not _holds(state, report):
                return _stale(report.turn_id)
            return record.verdict  # a redelivery: same answer, nothing re-applied
    agent = _current(state, report)
    if agent is None or agent.turn is None:
        return _stale(report.turn_id)
    verdict = _judge_and_apply(state, agent, agent.turn, report, now, commands)
    agent.last_submission = SubmissionRecord(
        turn_id=report.turn_id, attempt=report.attempt, verdict=verdict
    )
    return verdict


def _judge_and_apply(
    state: RunState,
    agent: AgentState,
    turn: Turn,
    report: msg.WorkflowSubmission,
    now: float,
    commands: list[Command],
) -> Verdict:
    if turn.phase == "present":
        decision: Rejection | AnswerCall | SameAnswer | VoteCall = Rejection(
            report.calls[0].name if report.calls else None,
            "This is the final presentation: no workflow tools are available. Reply with the "
            "final answer as plain text.",
        )
    else:
        orchestrator = state.config.orchestrator
        offered = [
            name for name in turn.tools if name != prompts.NEW_ANSWER or _can_answer(state, agent)
        ]
        decision = judge(
            report.calls,
            offered=offered,
            latest={label: a.content for label, a in state.latest_answers().items()},
            novelty=orchestrator.answer_novelty_requirement,
            answer_cap=orchestrator.max_new_answers_per_agent,
        )
    match decision:
        case Rejection(tool=tool, message=text):
            _emit(
                commands,
                ev.WorkflowRejected(
                    **_ids(state, agent), ts=now, turn_id=turn.turn_id, tool=tool, error=text
                ),
            )
            return Verdict(status="rejected", message=text)
        case AnswerCall(content=content):
            version = _accept_answer(state, agent, content, now, commands)
            return Verdict(status="accepted", message=f"Your answer was accepted as {version}.")
        case SameAnswer():
            return _same_answer(state, agent, turn, decision, now, commands)
        case VoteCall(target=target, reason=reason):
            if turn.answer_set_version != state.answer_set_version:
                return _discard_vote(state, agent, target, now, commands)
            return _accept_vote(state, agent, target, reason, now, commands)
        case _:
            assert_never(decision)


def _same_answer(
    state: RunState,
    agent: AgentState,
    turn: Turn,
    same: SameAnswer,
    now: float,
    commands: list[Command],
) -> Verdict:
    """A repeated answer is the vote it means, never a failed attempt.

    It counts against the current answer set when every current answer the turn did
    not see repeats it too (the agent agreed with answers it had not read): three
    agents giving one answer finish in three phases. Otherwise it is a vote on an
    older set, discarded like any other, and the agent gets a fresh turn.
    """
    novelty = state.config.orchestrator.answer_novelty_requirement
    seen = turn.answer_set_version
    latest = state.latest_answers()
    unseen = [a for i, a in enumerate(state.answers) if i >= seen and latest[a.label] is a]
    if not all(repeats(same.content, a.content, novelty) for a in unseen):
        return _discard_vote(state, agent, same.label, now, commands)
    how = "identical" if same.identical else f"word overlap {same.score:.2f}"
    reason = f"gave the same answer as {same.label} ({how})"
    _accept_vote(state, agent, same.label, reason, now, commands, same_answer=True)
    return Verdict(
        status="accepted",
        message=f"Your answer repeats the current answer of {same.label}, so it was counted "
        f"as your vote for {same.label}.",
    )


def _accept_answer(
    state: RunState, agent: AgentState, content: str, now: float, commands: list[Command]
) -> str:
    agent.answers += 1
    agent.failures = 0
    agent.trouble = None
    agent.turn = None
    version = answer_version(agent.label, agent.answers)
    state.answers.append(
        Answer(
            label=agent.label,
            agent_id=agent.agent_id,
            version=version,
            number=agent.answers,
            content=content,
        )
    )
    for other in state.agents:
        other.vote = None
    _emit(
        commands, ev.AnswerAccepted(**_ids(state, agent), ts=now, version=version, content=content)
    )
    # The agent that answered takes its next turn at once (it may vote before the
    # others' first answers arrive; a repeat of its answer keeps that vote current). But
    # while first answers are still being written, agents whose turn a new answer makes
    # stale wait for them instead of restarting on each: one batch of restarts, not one
    # per answer (N agents: at most 3N + 1 turn requests, not O(N²)).
    batch = _first_answers_coming(state)
    commands.append(_publish(state, agent, now, "coordinate"))
    interrupt = state.config.orchestrator.restart_policy == "interrupt"
    reason = f"new answer {version}"
    for other in state.agents:
        if other is agent or other.failed:
            continue
        writing_first = other.answers == 0 and other.turn is not None
        if other.turn is not None and not other.turn.started:
            # Still queued: replace it so that it shows the current answers (no work lost).
            commands.append(_cancel_turn(state, other.turn, f"restart: {reason}"))
            _emit(commands, ev.Restart(**_ids(state, other), ts=now, reason=reason))
            other.turn = None
            if batch and not writing_first:
                other.waiting = True
            else:
                commands.append(_publish(state, other, now, "coordinate"))
        elif other.turn is not None:
            # `finish` exists so every agent's first answer gets written: a turn that
            # may still produce one runs on. A turn of an agent that already answered
            # can only vote on (or improve) a set that just changed, so it restarts now.
            if not interrupt and (other.answers == 0 or FINISH_ANSWERED_TURNS):
                other.restart_pending = True  # its turn finishes; then it restarts
                continue
            commands.append(_cancel_turn(state, other.turn, f"restart: {reason}"))
            _emit(
                commands,
                ev.Restart(**_ids(state, other), ts=now, reason=reason, interrupted=True),
            )
            other.turn = None
            if batch and not writing_first:
                other.waiting = True
            else:
                commands.append(_publish(state, other, now, "coordinate"))
        elif other.retry_at is None and not other.waiting:
            _emit(commands, ev.Restart(**_ids(state, other), ts=now, reason=reason))
            if batch:
                other.waiting = True
            else:
                commands.append(_publish(state, other, now, "coordinate"))
    return version


def _first_answers_coming(state: RunState) -> bool:
    """Some live, healthy agent is still writing its first answer (turn running or queued)."""
    return any(
        not a.failed and a.answers == 0 and a.turn is not None and a.trouble is None
        for a in state.agents
    )


def _release_waiting(state: RunState, now: float, commands: list[Command]) -> None:
    """Once no first answer is coming, every waiting agent gets its turn (one batch)."""
    if state.status != "running" or _first_answers_coming(state):
        return
    for agent in state.agents:
        if agent.waiting:
            agent.waiting = False
            if not agent.failed and agent.turn is None and agent.retry_at is None:
                commands.append(_publish(state, agent, now, "coordinate"))


def _accept_vote(
    state: RunState,
    agent: AgentState,
    target: str,
    reason: str,
    now: float,
    commands: list[Command],
    same_answer: bool = False,
) -> Verdict:
    voted_for = _agent(state, target)  # judge only accepts labels that have answers
    agent.vote = Vote(target=target, reason=reason, answer_set_version=state.answer_set_version)
    agent.turn = None
    agent.failures = 0
    agent.trouble = None
    agent.restart_pending = False
    _emit(
        commands,
        ev.VoteAccepted(
            **_ids(state, agent),
            ts=now,
            target=target,
            target_agent=voted_for.agent_id,
            reason=reason,
            same_answer=same_answer,
        ),
    )
    return Verdict(status="accepted", message=f"Your vote for {target} was recorded.")


def _discard_vote(
    state: RunState, agent: AgentState, target: str, now: float, commands: list[Command]
) -> Verdict:
    agent.turn = None
    agent.failures = 0
    why = (
        f"the answers changed while {agent.label} worked: the vote was cast on an older answer set"
    )
    _emit(commands, ev.VoteDiscarded(**_ids(state, agent), ts=now, target=target, reason=why))
    _emit(commands, ev.Restart(**_ids(state, agent), ts=now, reason="answer set changed"))
    commands.append(_publish(state, agent, now, "coordinate"))
    return Verdict(
        status="stale",
        message="Your vote was not counted: new answers arrived while you worked. A fresh "
        "turn showing the current answers follows.",
    )


def _on_turn_failed(
    state: RunState, report: msg.TurnFailed, now: float, commands: list[Command]
) -> Verdict:
    agent = _current(state, report)
    if agent is None or agent.turn is None:
        return _stale(report.turn_id)
    if agent.turn.phase == "present":
        _complete(state, agent, now, commands, None, f"presentation failed: {report.error}")
    else:
        _fail_turn(state, agent, agent.turn, report.error, now, commands)
    return Verdict(status="accepted", message="failure recorded")


def _on_model_retrying(state: RunState, report: msg.ModelRetrying) -> Verdict:
    """The agent's provider failed and the worker retries: mark it troubled, unless the
    error is a rate limit (transient by nature; the turn's own failure will count)."""
    agent = _current(state, report)
    if agent is None:
        return _stale(report.turn_id)
    if not report.rate_limited and agent.trouble != report.error:
        agent.trouble = report.error
    return Verdict(status="accepted")


def _on_presentation(
    state: RunState, report: msg.PresentationFinished, now: float, commands: list[Command]
) -> Verdict:
    agent = _current(state, report)
    if agent is None or agent.turn is None or agent.turn.phase != "present":
        return _stale(report.turn_id)
    content = report.content.strip()
    _complete(state, agent, now, commands, content or None, "" if content else "empty presentation")
    return Verdict(status="accepted")

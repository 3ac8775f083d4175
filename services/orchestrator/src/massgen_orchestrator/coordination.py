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

from typing import Any, Literal, assert_never

from massgen_proto import events as ev
from massgen_proto import messages as msg
from massgen_proto.config import RunConfig
from massgen_proto.ids import answer_version, label_for, turn_id_for
from massgen_proto.messages import CancelRun, ChatMessage, Verdict, WorkerReport

from . import prompts
from .commands import CancelTurnCommand, Command, EmitEvent, PublishTurn, ReplyVerdict, Tick
from .judging import NOVELTY_LIMITS, AnswerCall, Rejection, VoteCall, judge, normalise, similarity
from .state import AgentState, Answer, RunState, SubmissionRecord, Turn, Vote

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
    "similarity",
    "winner_of",
]

MAX_ATTEMPTS = 3
"""Model responses a worker may try within one turn before the turn fails."""


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
    counts = {label: 0 for label in state.latest_answers()}
    if not counts:
        raise ValueError(f"run {state.run_id} has no answer to pick a winner from")
    for agent in state.agents:
        vote = agent.vote
        if not agent.failed and vote and vote.answer_set_version == state.answer_set_version:
            if vote.target in counts:
                counts[vote.target] += 1
    best = max(counts.values())
    return next(label for label, n in counts.items() if n == best), counts


# -- entry points -------------------------------------------------------------------------


def new_run(
    run_id: str, question: str, config: RunConfig, history: list[ChatMessage], now: float
) -> tuple[RunState, list[Command]]:
    """Start a run: announce it and publish every agent's first coordination turn.

    Args:
        run_id: the run's id.
        question: the user's task.
        config: the validated run config.
        history: earlier turns of a multi-turn session (may be empty).
        now: epoch seconds.
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


def _current(state: RunState, run_id: str, turn_id: str) -> AgentState | None:
    """The agent whose current turn is ``turn_id``, if the run is still going."""
    if state.over or run_id != state.run_id:
        return None
    for agent in state.agents:
        if agent.turn is not None and agent.turn.turn_id == turn_id:
            return agent
    return None


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
        )
        deadline = now + timeout
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


def _settle(state: RunState, now: float, commands: list[Command]) -> None:
    """End coordination when nobody is left, or when every live agent has voted."""
    if state.status != "running":
        return
    live = [a for a in state.agents if not a.failed]
    if not live:
        errors = "; ".join(f"{a.label} ({a.agent_id}): {a.last_error}" for a in state.agents)
        _finish(state, "failed", f"every agent failed: {errors}", now, commands)
        return
    version = state.answer_set_version
    if all(
        a.vote is not None
        and a.vote.answer_set_version == version
        and a.turn is None
        and a.retry_at is None
        for a in live
    ):
        _start_presentation(state, now, commands)


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


def _start_presentation(state: RunState, now: float, commands: list[Command]) -> None:
    label, votes = winner_of(state)
    winner = state.by_label(label)
    assert winner is not None  # winner_of only returns labels of this run
    _emit(
        commands,
        ev.Consensus(
            run_id=state.run_id, ts=now, winner=winner.agent_id, winner_label=label, votes=votes
        ),
    )
    state.status = "presenting"
    state.winner = label
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
    _emit(commands, ev.DeadlineReached(run_id=state.run_id, ts=now, answers=len(state.answers)))
    if state.answers:
        _start_presentation(state, now, commands)
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
    _finish(state, "cancelled", request.reason, now, commands)


def _on_turn_started(
    state: RunState, report: msg.TurnStarted, now: float, commands: list[Command]
) -> Verdict:
    agent = _current(state, report.run_id, report.turn_id)
    if agent is None or agent.turn is None:
        return _stale(report.turn_id)
    turn = agent.turn
    if turn.started and turn.worker == report.worker and report.delivery <= turn.delivery:
        return Verdict(status="accepted")  # the same report redelivered
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
            return record.verdict  # a redelivery: same answer, nothing re-applied
    agent = _current(state, report.run_id, report.turn_id)
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
        decision: Rejection | AnswerCall | VoteCall = Rejection(
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
        case VoteCall(target=target, reason=reason):
            if turn.answer_set_version != state.answer_set_version:
                return _discard_vote(state, agent, target, now, commands)
            return _accept_vote(state, agent, target, reason, now, commands)
        case _:
            assert_never(decision)


def _accept_answer(
    state: RunState, agent: AgentState, content: str, now: float, commands: list[Command]
) -> str:
    agent.answers += 1
    agent.failures = 0
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
    commands.append(_publish(state, agent, now, "coordinate"))
    interrupt = state.config.orchestrator.restart_policy == "interrupt"
    reason = f"new answer {version}"
    for other in state.agents:
        if other is agent or other.failed:
            continue
        if other.turn is not None:
            # `finish` exists so every agent's first answer gets written: a turn that
            # may still produce one runs on. A turn of an agent that already answered
            # can only vote on (or improve) a set that just changed, so it restarts now.
            if not interrupt and other.answers == 0:
                other.restart_pending = True  # its turn finishes; then it restarts
                continue
            commands.append(_cancel_turn(state, other.turn, f"restart: {reason}"))
            _emit(
                commands,
                ev.Restart(**_ids(state, other), ts=now, reason=reason, interrupted=True),
            )
            commands.append(_publish(state, other, now, "coordinate"))
        elif other.retry_at is None:
            _emit(commands, ev.Restart(**_ids(state, other), ts=now, reason=reason))
            commands.append(_publish(state, other, now, "coordinate"))
    return version


def _accept_vote(
    state: RunState,
    agent: AgentState,
    target: str,
    reason: str,
    now: float,
    commands: list[Command],
) -> Verdict:
    voted_for = state.by_label(target)
    assert voted_for is not None  # judge only accepts labels that have answers
    agent.vote = Vote(target=target, reason=reason, answer_set_version=state.answer_set_version)
    agent.turn = None
    agent.failures = 0
    agent.restart_pending = False
    _emit(
        commands,
        ev.VoteAccepted(
            **_ids(state, agent),
            ts=now,
            target=target,
            target_agent=voted_for.agent_id,
            reason=reason,
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
    agent = _current(state, report.run_id, report.turn_id)
    if agent is None or agent.turn is None:
        return _stale(report.turn_id)
    if agent.turn.phase == "present":
        _complete(state, agent, now, commands, None, f"presentation failed: {report.error}")
    else:
        _fail_turn(state, agent, agent.turn, report.error, now, commands)
    return Verdict(status="accepted", message="failure recorded")


def _on_presentation(
    state: RunState, report: msg.PresentationFinished, now: float, commands: list[Command]
) -> Verdict:
    agent = _current(state, report.run_id, report.turn_id)
    if agent is None or agent.turn is None or agent.turn.phase != "present":
        return _stale(report.turn_id)
    content = report.content.strip()
    _complete(state, agent, now, commands, content or None, "" if content else "empty presentation")
    return Verdict(status="accepted")

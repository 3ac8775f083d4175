"""Workflow submissions: judging an answer or a vote and applying the decision."""

from __future__ import annotations

from typing import assert_never

from massgen_proto import events as ev
from massgen_proto import messages as msg
from massgen_proto.code_text import restore_task_docstrings
from massgen_proto.ids import answer_version
from massgen_proto.messages import CodeCheck, Verdict

from . import prompts
from .commands import Command
from .conclusion import conclude
from .judging import AnswerCall, Rejection, SameAnswer, VoteCall, judge, repeats
from .reports import current, holds, stale
from .restarts import restart_others
from .run_events import emit, event_ids
from .state import AgentState, Answer, RunState, SubmissionRecord, Turn
from .turns import can_answer
from .votes import next_coordination, record_vote

__all__ = ["on_submission"]


def on_submission(
    state: RunState,
    report: msg.WorkflowSubmission,
    now: float,
    commands: list[Command],
    finish_answered: bool,
) -> Verdict:
    """Judge a submission and apply it (``finish_answered``: see ``restart_others``)."""
    for candidate in state.agents:
        record = candidate.last_submission
        if record and record.turn_id == report.turn_id and record.attempt == report.attempt:
            if not holds(state, report):
                return stale(report.turn_id)
            return record.verdict  # a redelivery: same answer, nothing re-applied
    agent = current(state, report)
    if agent is None or agent.turn is None:
        return stale(report.turn_id)
    verdict = _judge_and_apply(state, agent, agent.turn, report, now, commands, finish_answered)
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
    finish_answered: bool,
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
            name for name in turn.tools if name != prompts.NEW_ANSWER or can_answer(state, agent)
        ]
        decision = judge(
            [_as_written(call, state.question) for call in report.calls],
            offered=offered,
            latest={label: a.content for label, a in state.latest_answers().items()},
            novelty=orchestrator.answer_novelty_requirement,
            answer_cap=orchestrator.max_new_answers_per_agent,
        )
    match decision:
        case Rejection(tool=tool, message=text):
            emit(
                commands,
                ev.WorkflowRejected(
                    **event_ids(state, agent), ts=now, turn_id=turn.turn_id, tool=tool, error=text
                ),
            )
            return Verdict(status="rejected", message=text)
        case AnswerCall(content=content):
            check = next((c.check for c in report.calls if c.name == prompts.NEW_ANSWER), None)
            version = _accept_answer(state, agent, content, now, commands, finish_answered, check)
            return Verdict(status="accepted", message=f"Your answer was accepted as {version}.")
        case SameAnswer():
            return _same_answer(state, agent, turn, decision, now, commands)
        case VoteCall(target=target, reason=reason):
            if turn.answer_set_version != state.answer_set_version:
                return _discard_vote(state, agent, target, now, commands)
            record_vote(state, agent, target, reason, now, commands)
            return Verdict(status="accepted", message=f"Your vote for {target} was recorded.")
        case _:
            assert_never(decision)


def _as_written(call: msg.WorkflowCall, task: str) -> msg.WorkflowCall:
    """A ``new_answer`` with the task's docstrings its agent was shown elided put back
    (``code_text.restore_task_docstrings``): stored and compared as if copied whole."""
    args = call.arguments
    if call.name != prompts.NEW_ANSWER or not isinstance(args, dict):
        return call
    content = args.get("content")
    if not isinstance(content, str):
        return call
    restored = restore_task_docstrings(content, task)
    if restored == content:
        return call
    return call.model_copy(update={"arguments": {**args, "content": restored}})


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
    record_vote(state, agent, same.label, reason, now, commands, same_answer=True)
    return Verdict(
        status="accepted",
        message=f"Your answer repeats the current answer of {same.label}, so it was counted "
        f"as your vote for {same.label}.",
    )


def _accept_answer(
    state: RunState,
    agent: AgentState,
    content: str,
    now: float,
    commands: list[Command],
    finish_answered: bool,
    check: CodeCheck | None = None,
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
            check=check,
        )
    )
    for other in state.agents:
        other.vote = None
    emit(
        commands,
        ev.AnswerAccepted(
            **event_ids(state, agent), ts=now, version=version, content=content, check=check
        ),
    )
    if state.config.orchestrator.skip_coordination_rounds:
        # MassGen's debug/quick mode: the first answer wins without votes.
        conclude(state, now, commands)
    else:
        restart_others(state, agent, version, now, commands, finish_answered)
    return version


def _discard_vote(
    state: RunState, agent: AgentState, target: str, now: float, commands: list[Command]
) -> Verdict:
    agent.turn = None
    agent.failures = 0
    why = (
        f"the answers changed while {agent.label} worked: the vote was cast on an older answer set"
    )
    emit(commands, ev.VoteDiscarded(**event_ids(state, agent), ts=now, target=target, reason=why))
    emit(commands, ev.Restart(**event_ids(state, agent), ts=now, reason="answer set changed"))
    next_coordination(state, agent, now, commands)
    return Verdict(
        status="stale",
        message="Your vote was not counted: new answers arrived while you worked. A fresh "
        "turn showing the current answers follows.",
    )

"""Turns: building an agent's next turn request, making it current, cancelling turns."""

from __future__ import annotations

from typing import Any

from massgen_proto import messages as msg
from massgen_proto.code_text import task_examples
from massgen_proto.config import AgentConfig, BackendConfig
from massgen_proto.ids import turn_id_for, turn_token
from massgen_proto.messages import ChatMessage

from . import prompts
from .commands import CancelTurnCommand, Command, PublishTurn
from .state import AgentState, RunState, Turn

__all__ = [
    "MAX_ATTEMPTS",
    "PRESENTATION_FLOOR_SECONDS",
    "can_answer",
    "cancel_turn",
    "publish",
    "stop_turns",
]

MAX_ATTEMPTS = 3
"""Model responses a worker may try within one turn before the turn fails."""

PRESENTATION_FLOOR_SECONDS = 30.0
"""The least time a presentation gets when it starts at (or near) the run deadline."""


def can_answer(state: RunState, agent: AgentState) -> bool:
    cap = state.config.orchestrator.max_new_answers_per_agent
    return cap is None or agent.answers < cap


def cancel_turn(state: RunState, turn: Turn, reason: str) -> CancelTurnCommand:
    return CancelTurnCommand(
        cancel=msg.CancelTurn(run_id=state.run_id, turn_id=turn.turn_id, reason=reason)
    )


def stop_turns(state: RunState, commands: list[Command], reason: str) -> None:
    """Cancel every running turn and every planned one."""
    for agent in state.agents:
        if agent.turn is not None:
            commands.append(cancel_turn(state, agent.turn, reason))
            agent.turn = None
        agent.retry_at = None
        agent.restart_pending = False
        agent.waiting = False


def publish(state: RunState, agent: AgentState, now: float, phase: msg.Phase) -> PublishTurn:
    """Build the agent's next turn, make it current, and return the command publishing it."""
    cfg = state.agent_config(agent)
    backend = cfg.backend
    number = agent.turns + 1
    turn_id = turn_id_for(state.run_id, agent.label, number)
    timeout = state.config.timeout_settings.turn_timeout_seconds
    latest = state.latest_answers()
    answers = {label: a.content for label, a in latest.items()}
    checks = {label: a.check.summary() for label, a in latest.items() if a.check is not None}
    if phase == "coordinate":
        tools, messages = _coordination_prompt(state, agent, cfg, answers, checks, now)
        deadline = min(now + timeout, state.deadline)
    else:
        tools = []
        messages = _presentation_prompt(state, agent, cfg, answers, checks)
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
        backend=_backend_spec(backend),
        messages=messages,
        tools=tools,
        deadline=deadline,
        max_attempts=MAX_ATTEMPTS,
        max_tool_calls=state.config.orchestrator.max_tool_calls_per_turn,
        uses_tools=state.config.uses_tools(cfg),
        token=turn_token(state.secret, turn_id) if state.secret else "",
        examples=task_examples(state.question),
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


def _coordination_prompt(
    state: RunState,
    agent: AgentState,
    cfg: AgentConfig,
    answers: dict[str, str],
    checks: dict[str, str],
    now: float,
) -> tuple[list[dict[str, Any]], list[ChatMessage]]:
    """The workflow tools and the messages of a coordination turn."""
    coordination = state.config.orchestrator.coordination
    answering = can_answer(state, agent)
    tools = prompts.workflow_tools(list(answers), answering)
    messages = prompts.coordination_messages(
        task=state.question,
        answers=answers,
        system_message=cfg.system_message,
        history=state.history,
        voting_sensitivity=state.config.orchestrator.voting_sensitivity,
        can_answer=answering,
        remaining_seconds=state.deadline - now,
        answers_budget=state.config.orchestrator.answers_prompt_chars,
        planning=prompts.planning_instruction(
            coordination.enable_planning_mode, coordination.planning_mode_instruction
        ),
        can_run_code=_runs_code(cfg),
        has_tools=state.config.uses_tools(cfg) or _provider_tools(cfg),
        # Each agent reads the others' answers first and its own last: small models
        # favour the first answer they read, which must not be the same for every voter.
        viewer=agent.label,
        checks=checks,
    )
    return tools, messages


def _runs_code(cfg: AgentConfig) -> bool:
    """Whether the agent has a tool that runs code (to test answers before voting)."""
    b = cfg.backend
    return bool(b.enable_mcp_command_line or b.enable_code_execution or b.enable_code_interpreter)


def _provider_tools(cfg: AgentConfig) -> bool:
    """Whether the agent has a tool its provider runs (web search, code execution)."""
    return _runs_code(cfg) or cfg.backend.enable_web_search


def _presentation_prompt(
    state: RunState,
    agent: AgentState,
    cfg: AgentConfig,
    answers: dict[str, str],
    checks: dict[str, str],
) -> list[ChatMessage]:
    """The messages of the winner's presentation turn: the vote counts, the reasons of
    its votes and those of the votes for other answers (objections to weigh)."""
    version = state.answer_set_version
    current = [
        a.vote
        for a in state.agents
        if a.vote and a.vote.answer_set_version == version and not a.failed
    ]
    votes = {label: 0 for label in answers}
    for vote in current:
        if vote.target in votes:
            votes[vote.target] += 1
    reasons = [v.reason for v in current if v.target == agent.label]
    dissent = [(v.target, v.reason) for v in current if v.target != agent.label]
    return prompts.presentation_messages(
        task=state.question,
        answers=answers,
        winner_label=agent.label,
        vote_reasons=reasons,
        system_message=cfg.system_message,
        history=state.history,
        answers_budget=state.config.orchestrator.answers_prompt_chars,
        votes=votes if current else None,
        dissent=dissent,
        checks=checks,
    )


def _backend_spec(backend: BackendConfig) -> msg.BackendSpec:
    return msg.BackendSpec(
        type=backend.type,
        model=backend.model or "",
        base_url=backend.base_url,
        api_key=backend.api_key,
        temperature=backend.temperature,
        max_tokens=backend.max_tokens,
        params=backend.passthrough_params(),
    )

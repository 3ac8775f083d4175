"""Usage accounting and the run budget (``max_total_tokens``, ``max_cost_usd``)."""

from __future__ import annotations

from massgen_proto import events as ev
from massgen_proto import messages as msg
from massgen_proto.messages import WorkerReport

from .commands import Command
from .conclusion import agent_named, complete, finish, winner_of
from .reports import holds
from .run_events import emit
from .state import RunState
from .turns import stop_turns

__all__ = ["account", "keep_to_budget", "over_budget"]


def account(state: RunState, report: WorkerReport, usage: msg.Usage) -> bool:
    """Add what the report's turn used since its last report to its agent's totals
    (the turn may be over: its last response's usage comes after it). False when the
    report is not believed (no turn of this run, or not the turn's token)."""
    if state.over or report.run_id != state.run_id or not holds(state, report):
        return False
    agent = next(
        (a for a in state.agents if report.turn_id.startswith(f"{state.run_id}-{a.label}-t")),
        None,
    )
    if agent is None:
        return False
    last = state.turn_usage.get(report.turn_id) or msg.Usage()
    grown = msg.Usage(
        prompt_tokens=max(usage.prompt_tokens, last.prompt_tokens),
        completion_tokens=max(usage.completion_tokens, last.completion_tokens),
        cost_usd=max(usage.cost_usd, last.cost_usd),
    )
    agent.tokens += (
        grown.prompt_tokens + grown.completion_tokens - last.prompt_tokens - last.completion_tokens
    )
    agent.cost_usd += grown.cost_usd - last.cost_usd
    state.turn_usage[report.turn_id] = grown
    return True


def over_budget(state: RunState) -> str | None:
    """The run budget limit reached (``max_total_tokens 20000``), or None."""
    settings = state.config.orchestrator
    tokens = sum(agent.tokens for agent in state.agents)
    if settings.max_total_tokens is not None and tokens >= settings.max_total_tokens:
        return f"max_total_tokens {settings.max_total_tokens}"
    cost = sum(agent.cost_usd for agent in state.agents)
    if settings.max_cost_usd is not None and cost >= settings.max_cost_usd:
        return f"max_cost_usd {settings.max_cost_usd:g}"
    return None


def keep_to_budget(state: RunState, now: float, commands: list[Command]) -> None:
    """Once the run's budget is used up no turn starts: the best answer so far (by the
    votes on it) is the final answer as it stands, without a presentation turn."""
    if state.status != "running":
        return  # over, or presenting: the presentation is the last turn anyway
    limit = over_budget(state)
    if limit is None:
        return
    stop_turns(state, commands, f"run budget reached ({limit})")
    tokens = sum(agent.tokens for agent in state.agents)
    cost = sum(agent.cost_usd for agent in state.agents)
    emit(commands, ev.BudgetReached(
        run_id=state.run_id, ts=now, limit=limit, tokens=tokens, cost_usd=round(cost, 6),
        answers=len(state.answers),
    ))  # fmt: skip
    note = f"the run's budget was reached ({limit}: {tokens} tokens, ${cost:.4f})"
    if not state.answers:
        finish(state, "failed", f"{note} before any answer", now, commands)
        return
    label, votes = winner_of(state)
    winner = agent_named(state, label)
    emit(commands, ev.Consensus(
        run_id=state.run_id, ts=now, winner=winner.agent_id, winner_label=label, votes=votes
    ))  # fmt: skip
    state.winner_label = label
    complete(state, winner, now, commands, None, note)

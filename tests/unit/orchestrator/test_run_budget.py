"""Run budgets: ``orchestrator.max_total_tokens`` and ``max_cost_usd``."""

from __future__ import annotations

from massgen_proto.messages import Usage
from orchestrator_driver import Driver, events, kinds, make_config

A1 = "Paris is the capital of France."
A2 = "The capital of France is Paris, which sits on the Seine."


def used(tokens: int, cost: float = 0.0) -> Usage:
    return Usage(prompt_tokens=tokens - tokens // 4, completion_tokens=tokens // 4, cost_usd=cost)


def test_reaching_the_token_budget_ends_the_run_with_the_best_answer_so_far():
    d = Driver(make_config(2, max_total_tokens=1000))
    d.answer("agent1", A1, usage=used(300))
    d.answer("agent2", A2, usage=used(300))
    assert d.state.status == "running"
    cmds = d.vote("agent1", "agent2", usage=used(500))  # agent1's new turn: 1100 in all
    assert kinds(cmds) == [
        "vote_accepted agent1",
        "cancel agent2-t2",
        "budget_reached",
        "consensus",
        "final_answer agent2",
        "run_finished",
        "verdict accepted",
    ]  # no presentation turn: it would spend beyond the budget
    reached = events(cmds)[1]
    assert (reached.limit, reached.tokens, reached.answers) == ("max_total_tokens 1000", 1100, 2)
    assert d.state.status == "completed" and d.state.final_answer == A2
    finished = events(cmds)[-1]
    assert finished.winner == "beta" and "budget was reached" in finished.message


def test_reports_repeat_a_turns_running_total_which_is_counted_once():
    d = Driver(make_config(2, max_total_tokens=10_000))
    d.submit("agent1", [], usage=used(400))  # rejected: no workflow call; same turn
    d.answer("agent1", A1, attempt=2, usage=used(600))
    assert d.state.agents[0].tokens == 600
    d.answer("agent2", A2, usage=used(100))
    assert sum(a.tokens for a in d.state.agents) == 700


def test_the_cost_budget_before_any_answer_fails_the_run_and_says_why():
    d = Driver(make_config(2, max_cost_usd=0.01))
    cmds = d.fail("agent1", usage=used(5000, cost=0.02))
    assert d.state.status == "failed"
    assert "budget" in d.state.message and "before any answer" in d.state.message
    assert "publish agent1" not in kinds(cmds)  # no retry turn either


def test_usage_of_a_stale_or_forged_report_is_not_believed():
    d = Driver(make_config(2, max_total_tokens=1000))
    turn = d.turn_id("agent1")
    d.submit("agent1", [], usage=used(10**6), token="0" * 32, turn_id=turn)
    assert d.state.status == "running" and d.state.agents[0].tokens == 0


def test_without_budgets_usage_is_counted_and_nothing_stops():
    d = Driver(make_config(2))
    d.answer("agent1", A1, usage=used(10**7, cost=500.0))
    assert d.state.status == "running" and d.state.agents[0].cost_usd == 500.0

"""Failures, retries with backoff, turn and run deadlines, cancellation."""

from __future__ import annotations

import pytest
from massgen_orchestrator.coordination import backoff_seconds, winner_of
from massgen_orchestrator.state import next_wakeup
from orchestrator_driver import START, Driver, events, kinds, make_config, verdict_of

A1 = "Paris is the capital of France."
A2 = "The capital of France is Paris, which sits on the Seine."


def test_backoff_doubles_and_is_capped():
    assert [backoff_seconds(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_failed_turn_is_retried_after_backoff_on_tick():
    d = Driver(make_config(2))
    cmds = d.fail("agent1", "provider error 500")
    assert kinds(cmds) == ["agent_error agent1", "verdict accepted"]
    error = events(cmds)[0]
    assert (error.failures, error.retry_in, error.turn_id) == (1, 0.5, "r1-agent1-t1")
    assert next_wakeup(d.state) == START + 0.5
    assert kinds(d.tick(0.4)) == []
    assert kinds(d.tick(0.1)) == ["publish agent1"]
    assert d.turn("agent1").number == 2
    # Second consecutive failure: backoff doubles.
    d.fail("agent1")
    assert events(d.last)[0].retry_in == 1.0
    assert d.state.agents[0].retry_at == pytest.approx(d.now + 1.0)


def test_accepted_workflow_call_resets_consecutive_failures():
    d = Driver(make_config(2))
    d.fail("agent1")
    d.tick(0.5)
    d.answer("agent1", A1)
    assert d.state.agents[0].failures == 0


def test_failure_cap_marks_agent_failed_and_consensus_follows():
    d = Driver(make_config(2, max_agent_failures=2))
    d.answer("agent2", A2)
    d.vote("agent2", "agent2")
    d.fail("agent1")
    d.tick(0.5)
    cmds = d.fail("agent1", "rate limited")
    assert kinds(cmds) == [
        "agent_error agent1",
        "agent_failed agent1",
        "consensus",
        "presentation_started agent2",
        "present agent2",
        "verdict accepted",
    ]
    assert events(cmds)[0].retry_in is None
    assert d.state.agents[0].failed
    assert events(cmds)[2].votes == {"agent2": 1}


def test_all_agents_failed_ends_run_failed_with_each_error():
    d = Driver(make_config(2, max_agent_failures=1))
    d.fail("agent1", "bad key")
    cmds = d.fail("agent2", "model not found")
    assert kinds(cmds) == [
        "agent_error agent2",
        "agent_failed agent2",
        "run_finished",
        "verdict accepted",
    ]
    finished = events(cmds)[-1]
    assert finished.status == "failed"
    assert finished.message == (
        "every agent failed: agent1 (alpha): bad key; agent2 (beta): model not found"
    )
    assert next_wakeup(d.state) is None


def test_turn_deadline_counts_as_failure_even_when_still_queued():
    d = Driver(make_config(2, turn_timeout=60))
    assert next_wakeup(d.state) == START + 60
    cmds = d.tick(60)
    assert kinds(cmds) == [
        "cancel agent1-t1",
        "agent_error agent1",
        "cancel agent2-t1",
        "agent_error agent2",
    ]
    assert events(cmds)[0].error == "turn timed out after 60s"
    assert d.state.agents[0].retry_at == START + 60.5


def test_report_after_turn_deadline_sees_the_timeout_first():
    d = Driver(make_config(1, turn_timeout=60))
    cmds = d.answer("agent1", A1, dt=61)
    assert kinds(cmds) == ["cancel agent1-t1", "agent_error agent1", "verdict stale"]


def test_run_deadline_with_answers_presents_best_so_far():
    d = Driver(make_config(3, timeout=300, turn_timeout=600))
    d.answer("agent2", A2)
    d.vote("agent2", "agent2")  # agent2's second turn: version 1, still current
    assert next_wakeup(d.state) == START + 300
    cmds = d.tick(300)
    assert kinds(cmds) == [
        "cancel agent1-t1",
        "cancel agent3-t1",
        "deadline_reached",
        "consensus",
        "presentation_started agent2",
        "present agent2",
    ]
    assert events(cmds)[0].answers == 1
    assert d.state.status == "presenting"
    # Past the run deadline the presentation still gets its floor, not a whole turn timeout.
    assert d.turn("agent2").deadline == d.now + 30
    d.present("agent2", "Paris.")
    assert d.state.status == "completed"


def test_run_deadline_without_votes_picks_first_agent_with_answer():
    d = Driver(make_config(3, timeout=100))
    d.answer("agent3", "Lyon")
    d.answer("agent2", A2)
    d.tick(100)
    consensus = events(d.last)[1]
    assert consensus.winner_label == "agent2"
    assert consensus.votes == {"agent2": 0, "agent3": 0}
    assert winner_of(d.state)[0] == "agent2"


def test_run_deadline_without_answers_times_out():
    d = Driver(make_config(2, timeout=90))
    cmds = d.tick(90)
    assert kinds(cmds) == [
        "cancel agent1-t1",
        "cancel agent2-t1",
        "deadline_reached",
        "run_finished",
    ]
    finished = events(cmds)[-1]
    assert finished.status == "timed_out"
    assert finished.message == "no agent produced an answer within 90s"
    assert d.state.status == "timed_out" and next_wakeup(d.state) is None


def test_coordination_turn_deadline_never_passes_run_deadline():
    d = Driver(make_config(1, timeout=100, turn_timeout=60))
    d.answer("agent1", A1, dt=50)
    assert d.turn("agent1").deadline == START + 100
    assert "about 50 seconds" in d.turn("agent1").messages[-1].content


def test_cancel_run_cancels_running_turns_and_keeps_answers():
    d = Driver(make_config(2))
    d.answer("agent1", A1)
    d.fail("agent2")  # agent2 waits for its retry
    cmds = d.cancel("user pressed ctrl-c")
    assert kinds(cmds) == ["cancel agent1-t2", "run_finished"]
    finished = events(cmds)[-1]
    assert (finished.status, finished.message) == ("cancelled", "user pressed ctrl-c")
    assert [a.content for a in d.state.answers] == [A1]
    assert next_wakeup(d.state) is None
    # Everything after the end is stale or ignored.
    assert kinds(d.start("agent1")) == ["verdict stale"]
    assert kinds(d.cancel()) == []
    assert kinds(d.tick(1000)) == []


def test_reports_for_superseded_turns_are_stale():
    d = Driver(make_config(2, restart_policy="interrupt"))
    old = d.turn_id("agent2")
    d.answer("agent1", A1)
    for cmds in (
        d.start("agent2", turn_id=old),
        d.fail("agent2", turn_id=old),
        d.present("agent2", "x", turn_id=old),
    ):
        assert kinds(cmds) == ["verdict stale"]
        assert "no longer current" in verdict_of(cmds).message
    assert d.state.agents[1].failures == 0


def test_agent_in_backoff_keeps_waiting_and_its_retry_sees_new_answers():
    d = Driver(make_config(2))
    d.fail("agent2")
    cmds = d.answer("agent1", A1)
    assert kinds(cmds) == ["answer_accepted agent1", "publish agent1", "verdict accepted"]
    assert kinds(d.tick(0.5)) == ["publish agent2"]
    retry = d.turn("agent2")
    assert retry.answer_set_version == 1 and A1 in retry.messages[-1].content


# -- failing providers and failed agents ---------------------------------------------------


def _healthy_pair_agrees(d: Driver) -> None:
    d.answer("agent1", A1, dt=2.0)
    d.answer("agent2", A1)  # the same answer: agent2's vote for agent1
    d.vote("agent1", "agent1", dt=2.0)


def test_failing_provider_stops_counting_a_second_after_the_others_voted():
    d = Driver(make_config(3))
    d.retrying("agent3", dt=0.1)  # agent3's provider answers 500; its worker retries
    assert d.state.agents[2].trouble == "HTTP 500: upstream down"
    _healthy_pair_agrees(d)
    assert d.state.status == "running" and d.state.waiting_since == d.now
    assert next_wakeup(d.state) == d.now + 1.0
    assert kinds(d.tick(0.5)) == []
    cmds = d.tick(0.5)
    assert kinds(cmds)[:3] == ["cancel agent3-t1", "agent_excluded agent3", "consensus"]
    assert "presentation_started agent1" in kinds(cmds)
    assert events(cmds)[0].error == "HTTP 500: upstream down"


def test_rate_limited_agent_is_waited_for():
    d = Driver(make_config(3))
    d.retrying("agent3", error="HTTP 429: slow down", status=429, dt=0.1)
    assert d.state.agents[2].trouble is None
    _healthy_pair_agrees(d)
    assert d.state.waiting_since is None
    d.tick(30)
    assert d.state.status == "running"
    d.answer("agent3", A1)  # it recovers and agrees: consensus at once
    assert d.state.status == "presenting"


def test_troubled_agent_that_recovers_clears_its_trouble():
    d = Driver(make_config(2))
    d.retrying("agent2")
    d.answer("agent2", A2, dt=1.0)
    assert d.state.agents[1].trouble is None


def test_failed_agent_never_wins():
    d = Driver(make_config(3, max_agent_failures=1))
    d.play([("agent1", "answer", A1), ("agent2", "answer", A2), ("agent3", "answer", "Lyon")])
    d.vote("agent2", "agent1")
    d.fail("agent1")  # agent1's vote turn fails: it is out
    assert d.state.agents[0].failed
    cmds = d.vote("agent3", "agent1")
    consensus = [e for e in events(cmds) if e.kind == "consensus"][0]
    assert consensus.winner_label == "agent2"  # agent1 had the votes, but failed
    assert consensus.votes == {"agent2": 0, "agent3": 0}


def test_all_failed_with_answers_completes_with_the_best_answer():
    d = Driver(make_config(2, max_agent_failures=1))
    d.answer("agent1", A1)
    d.fail("agent2")
    cmds = d.fail("agent1")
    assert d.state.status == "completed"
    assert d.state.final_answer == A1
    final = [e for e in events(cmds) if e.kind == "final_answer"][0]
    assert final.fallback and final.label == "agent1"
    assert "every agent failed" in d.state.message

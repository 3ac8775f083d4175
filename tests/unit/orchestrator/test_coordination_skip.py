"""``skip_coordination_rounds`` (MassGen's debug/quick mode) in the state machine: only the
first agent works, its first answer wins without votes and goes straight to presentation.
One test per rule; the ordinary flow is in test_coordination_flow.py."""

from __future__ import annotations

from massgen_proto.events import Consensus, RunFinished
from orchestrator_driver import RUN, START, Driver, events, kinds, make_config

PARIS = "Paris is the capital of France."


def skipping(agents: int = 3, **settings) -> Driver:
    return Driver(make_config(agents, skip_coordination_rounds=True, **settings))


def test_only_the_first_agent_gets_a_turn_but_every_agent_is_announced():
    d = skipping()
    assert kinds(d.last) == ["run_created", "publish agent1"]
    assert [a.id for a in d.last[0].event.agents] == ["alpha", "beta", "gamma"]
    assert [t["function"]["name"] for t in d.turn("agent1").tools] == ["new_answer"]
    assert [a.turn is not None for a in d.state.agents] == [True, False, False]


def test_the_first_answer_wins_without_votes_and_is_presented():
    d = skipping()
    assert kinds(d.answer("agent1", PARIS)) == [
        "answer_accepted agent1",
        "consensus",
        "presentation_started agent1",
        "present agent1",
        "verdict accepted",
    ]
    assert events(d.last)[1] == Consensus(
        run_id=RUN, ts=START, winner="alpha", winner_label="agent1", votes={"agent1": 0}
    )
    presentation = d.turn("agent1")
    assert presentation.phase == "present" and presentation.tools == []
    assert PARIS in presentation.messages[-1].content
    assert kinds(d.present("agent1", "Paris.")) == [
        "final_answer agent1",
        "run_finished",
        "verdict accepted",
    ]
    finished = events(d.last)[-1]
    assert isinstance(finished, RunFinished)
    assert (finished.status, finished.winner) == ("completed", "alpha")
    assert d.state.final_answer == "Paris."
    # Nobody else ever had a turn.
    assert {r.label for r in d.requests()} == {"agent1"}


def test_the_first_agents_failures_are_retried_and_end_the_run_alone():
    d = skipping(max_agent_failures=2)
    d.fail("agent1", "HTTP 500 from the provider")
    assert kinds(d.tick(0.5)) == ["publish agent1"]
    cmds = d.fail("agent1", "HTTP 500 again")
    assert kinds(cmds) == [
        "agent_error agent1",
        "agent_failed agent1",
        "run_finished",
        "verdict accepted",
    ]
    finished = events(cmds)[-1]
    assert finished.status == "failed"
    assert finished.message == "every agent failed: agent1 (alpha): HTTP 500 again"
    assert {r.label for r in d.requests()} == {"agent1"}


def test_a_deadline_without_an_answer_times_the_run_out_without_other_agents():
    d = skipping(timeout=30, turn_timeout=60)
    cmds = d.tick(30)
    assert kinds(cmds) == ["cancel agent1-t1", "deadline_reached", "run_finished"]
    assert events(cmds)[-1].status == "timed_out"
    assert {r.label for r in d.requests()} == {"agent1"}


def test_a_single_agent_team_runs_the_same_way():
    d = skipping(agents=1)
    assert kinds(d.answer("agent1", PARIS))[:2] == ["answer_accepted agent1", "consensus"]
    assert d.state.status == "presenting"


def test_off_by_default_every_agent_coordinates():
    d = Driver(make_config(3))
    assert kinds(d.last) == ["run_created", "publish agent1", "publish agent2", "publish agent3"]
    assert kinds(d.answer("agent1", PARIS))[:2] == ["answer_accepted agent1", "publish agent1"]

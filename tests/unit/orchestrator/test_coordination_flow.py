"""Whole runs through the coordination state machine: start, restarts, consensus, presentation."""

from __future__ import annotations

import pytest
from massgen_proto.events import AgentInfo, Consensus, FinalAnswer, RunCreated, RunFinished
from massgen_proto.messages import ChatMessage, CodeCheck
from orchestrator_driver import (
    RUN,
    START,
    Driver,
    describe,
    events,
    kinds,
    make_config,
    verdict_of,
)

A1 = "Paris is the capital of France."
A2 = "The capital of France is Paris, which sits on the Seine."
A3 = "France's capital city: Paris (population about two million)."


def _answers_then_fresh_turns(d: Driver) -> None:
    """Each agent answers in its first turn (agent1 and agent2 then hold out-of-date turns)."""
    d.play([("agent1", "answer", A1), ("agent2", "answer", A2), ("agent3", "answer", A3)])


def test_new_run_announces_agents_with_labels_and_publishes_first_turns():
    config = make_config(3, timeout=300, turn_timeout=60)
    d = Driver(config)
    assert kinds(d.last) == ["run_created", "publish agent1", "publish agent2", "publish agent3"]
    created = d.last[0].event
    assert created == RunCreated(
        run_id=RUN,
        ts=START,
        question="What is the capital of France?",
        agents=[
            AgentInfo(id="alpha", label="agent1", provider="openai", model="gpt-test-0"),
            AgentInfo(id="beta", label="agent2", provider="openai", model="gpt-test-1"),
            AgentInfo(id="gamma", label="agent3", provider="openai", model="gpt-test-2"),
        ],
        deadline=START + 300,
    )
    first = d.turn("agent1")
    assert d.last[1].provider == "openai"
    assert (first.turn_id, first.agent_id, first.label) == ("r1-agent1-t1", "alpha", "agent1")
    assert (first.phase, first.number, first.answer_set_version) == ("coordinate", 1, 0)
    assert first.deadline == START + 60
    assert first.max_attempts == 3
    assert first.backend.model == "gpt-test-0" and first.backend.params == {"top_p": 0.9}
    # No answers yet: only new_answer is offered.
    assert [t["function"]["name"] for t in first.tools] == ["new_answer"]
    assert d.state.status == "running"


def test_full_three_agent_run_finish_policy():
    d = Driver()
    # The agent that answers takes its next turn at once (it may vote early).
    assert kinds(d.answer("agent1", A1)) == [
        "answer_accepted agent1",
        "publish agent1",
        "verdict accepted",
    ]
    # agent2 and agent3 are still on their first turn: under "finish" they keep it.
    assert [a.restart_pending for a in d.state.agents] == [False, True, True]
    # agent2's first-turn answer is judged against the current set (agent1's answer) and
    # accepted. agent1's turn is now stale: it stops and waits for agent3's first answer
    # (one batch of restarts, not one per answer).
    assert kinds(d.answer("agent2", A2)) == [
        "answer_accepted agent2",
        "publish agent2",
        "cancel agent1-t2",
        "restart agent1",
        "verdict accepted",
    ]
    assert [a.waiting for a in d.state.agents] == [True, False, False]
    # The last first answer: everyone gets a turn that sees all three answers.
    assert kinds(d.answer("agent3", A3)) == [
        "answer_accepted agent3",
        "publish agent3",
        "cancel agent2-t2",
        "restart agent2",
        "publish agent2",
        "publish agent1",
        "verdict accepted",
    ]
    # Every running turn now sees all three answers: no vote is stale.
    assert kinds(d.vote("agent3", "agent2")) == ["vote_accepted agent3", "verdict accepted"]
    accepted = events(d.last)[0]
    assert (accepted.agent, accepted.target, accepted.target_agent) == ("gamma", "agent2", "beta")
    assert kinds(d.vote("agent1", "agent2")) == ["vote_accepted agent1", "verdict accepted"]
    assert kinds(d.vote("agent2", "agent1")) == [
        "vote_accepted agent2",
        "consensus",
        "presentation_started agent2",
        "present agent2",
        "verdict accepted",
    ]
    consensus = d.last[1].event
    assert consensus == Consensus(
        run_id=RUN,
        ts=d.now,
        winner="beta",
        winner_label="agent2",
        votes={"agent1": 1, "agent2": 2, "agent3": 0},
    )
    assert d.state.status == "presenting"
    presentation = d.turn("agent2")
    assert presentation.phase == "present" and presentation.tools == []
    user = presentation.messages[-1].content
    assert A1 in user and A2 in user and A3 in user
    assert "it is right" in user  # reasons of the votes agent2 received
    assert "VOTES: agent1 1, agent2 2, agent3 0" in user
    assert "OBJECTIONS (votes for other answers):\n- for agent1: " in user  # agent2's own vote
    assert kinds(d.present("agent2", "  Paris.  ")) == [
        "final_answer agent2",
        "run_finished",
        "verdict accepted",
    ]
    final, finished = events(d.last)
    assert final == FinalAnswer(
        run_id=RUN, ts=d.now, agent="beta", label="agent2", content="Paris.", fallback=False
    )
    assert finished == RunFinished(run_id=RUN, ts=d.now, status="completed", winner="beta")
    assert d.state.status == "completed" and d.state.final_answer == "Paris."


def test_accepted_answer_clears_votes_and_restarts_idle_voters():
    d = Driver(make_config(2))
    d.answer("agent1", A1)
    d.vote("agent2", "agent1")  # agent2's first turn offered only new_answer
    assert verdict_of(d.last).status == "rejected"
    d.answer("agent2", A2, attempt=2)
    d.vote("agent1", "agent2")  # stale (built at version 1): fresh turn
    d.vote("agent1", "agent2")
    assert d.state.agents[0].vote is not None
    # agent2 improves its answer: agent1's vote is cleared and, being idle, it restarts now.
    cmds = d.answer("agent2", A2 + " It is also the largest city.")
    assert kinds(cmds) == [
        "answer_accepted agent2",
        "publish agent2",
        "restart agent1",
        "publish agent1",
        "verdict accepted",
    ]
    assert all(a.vote is None for a in d.state.agents)
    assert d.turn("agent1").answer_set_version == 3
    assert events(cmds)[0].version == "agent2.2"


def test_interrupt_policy_cancels_running_turns_and_restarts_at_once():
    d = Driver(make_config(3, restart_policy="interrupt"))
    old_turn = d.turn_id("agent2")
    assert kinds(d.answer("agent1", A1)) == [
        "answer_accepted agent1",
        "publish agent1",
        "cancel agent2-t1",
        "restart agent2",
        "publish agent2",
        "cancel agent3-t1",
        "restart agent3",
        "publish agent3",
        "verdict accepted",
    ]
    restart = events(d.last)[1]
    assert restart.interrupted and restart.reason == "new answer agent1.1"
    assert d.turn("agent2").answer_set_version == 1
    # The cancelled turn's late answer is stale and changes nothing.
    before = d.state
    assert kinds(d.answer("agent2", A2, turn_id=old_turn)) == ["verdict stale"]
    assert d.state == before


def test_finish_policy_keeps_a_first_answer_turn_and_discards_its_stale_vote():
    d = Driver(make_config(3))
    d.answer("agent1", A1)
    d.fail("agent2")  # agent2 has no answer yet; its retry turn will see agent1's answer
    d.tick(5.0)
    assert d.turn("agent2").answer_set_version == 1
    d.answer("agent3", A3)  # answer set changes while agent2's retry turn runs
    assert d.state.agents[1].restart_pending  # no answer of its own yet: it finishes
    cmds = d.vote("agent2", "agent1")
    discarded = events(cmds)[0]
    assert discarded.kind == "vote_discarded" and discarded.target == "agent1"
    verdict = verdict_of(cmds)
    assert verdict.status == "stale" and "new answers" in verdict.message
    assert d.turn("agent2").answer_set_version == 2
    assert d.state.agents[1].vote is None and not d.state.agents[1].restart_pending


def test_finish_policy_interrupts_agents_that_already_answered():
    d = Driver(make_config(2))
    d.answer("agent1", A1)
    cmds = d.answer("agent2", A2)
    assert "cancel agent1-t2" in kinds(cmds)
    restart = [e for e in events(cmds) if e.kind == "restart"][0]
    assert restart.label == "agent1" and restart.interrupted


def test_finish_policy_answer_from_old_turn_is_judged_against_current_set():
    d = Driver(make_config(2, answer_novelty_requirement="balanced"))
    d.answer("agent1", A1)
    # agent2's first turn saw no answers, but its answer duplicates agent1's current one:
    # the only answer it did not see is the one it repeats, so its vote counts now.
    cmds = d.answer("agent2", "  paris is the CAPITAL   of France. ")
    assert kinds(cmds) == ["vote_accepted agent2", "verdict accepted"]
    assert "counted as your vote for agent1" in verdict_of(cmds).message
    assert d.state.agents[1].vote.answer_set_version == 1


def test_repeated_answer_that_missed_other_answers_is_a_stale_vote():
    d = Driver(make_config(3))
    d.answer("agent1", A1)
    d.answer("agent3", A3)  # agent2 never saw this one
    cmds = d.answer("agent2", A1)
    assert kinds(cmds)[:2] == ["vote_discarded agent2", "restart agent2"]
    assert verdict_of(cmds).status == "stale"
    assert d.turn("agent2").answer_set_version == 2


def test_three_identical_answers_finish_in_three_phases_without_a_failed_attempt():
    d = Driver(make_config(3))
    d.answer("agent1", A1)  # phase 1: everyone answers the same
    d.answer("agent2", A1)
    d.answer("agent3", A1)
    assert [a.vote.target if a.vote else None for a in d.state.agents] == [
        None,
        "agent1",
        "agent1",
    ]
    cmds = d.vote("agent1", "agent1")  # phase 2: agent1's fresh turn votes
    assert "presentation_started agent1" in kinds(cmds)  # phase 3: the presentation
    assert not [c for c in d.log if "rejected" in describe(c) or "agent_error" in describe(c)]
    assert len(d.requests()) == 5  # 3 first turns, agent1's vote turn, the presentation


def test_queued_first_turn_is_rebuilt_with_the_current_answers():
    d = Driver(make_config(2), autostart=False)
    d.start("agent1")
    cmds = d.answer("agent1", A1)  # agent2's first turn is still queued
    assert kinds(cmds) == [
        "answer_accepted agent1",
        "publish agent1",
        "cancel agent2-t1",
        "restart agent2",
        "publish agent2",
        "verdict accepted",
    ]
    assert A1 in d.turn("agent2").messages[-1].content
    assert d.turn("agent2").answer_set_version == 1


def test_two_one_split_picks_majority():
    d = Driver()
    d.play([("agent1", "answer", A1), ("agent2", "answer", A2), ("agent3", "answer", A3)])
    d.play(
        [("agent1", "vote", "agent3"), ("agent2", "vote", "agent3"), ("agent3", "vote", "agent1")]
    )
    consensus = events(d.last)[1]
    assert (consensus.winner_label, consensus.winner) == ("agent3", "gamma")
    assert consensus.votes == {"agent1": 1, "agent2": 0, "agent3": 2}


def test_three_way_tie_goes_to_first_in_config_order():
    d = Driver()
    d.play([("agent1", "answer", A1), ("agent2", "answer", A2), ("agent3", "answer", A3)])
    d.play(
        [("agent1", "vote", "agent3"), ("agent2", "vote", "agent2"), ("agent3", "vote", "agent1")]
    )
    consensus = events(d.last)[1]
    assert consensus.winner_label == "agent1"
    assert consensus.votes == {"agent1": 1, "agent2": 1, "agent3": 1}


CODE_TASK = "Complete:\n```python\ndef inc(x):\n    pass\n```"
INC = "```python\ndef inc(x):\n    return x + 1\n```"
INC_TOO = "Here:\n```python\ndef inc(x):\n    'Add one.'\n    return x + 1\n```"
INC_ODD = "```python\ndef inc(x):\n    y = [x]\n    while len(y) < 2:\n        y.append(1)\n    return sum(y)\n```"


DOC = '"""Return x plus one, for any integer x given to it."""'
DOC_TASK = f"Complete:\n```python\ndef inc(x):\n    {DOC}\n```"
DOC_INC = f"```python\ndef inc(x):\n    {DOC}\n    return x + 1\n```"


def test_a_docstring_shown_elided_is_whole_in_what_agents_submit():
    """Agents read others' copies of the task's docstring as a marker; what they write
    from it (an answer, the final one) gets the docstring back."""
    d = Driver(question=DOC_TASK)
    d.answer("agent1", DOC_INC)
    assert "(the task's docstring)" in d.turn("agent1").messages[-1].content
    copied = DOC_INC.replace(DOC, '"""(the task\'s docstring)"""')
    cmds = d.answer("agent2", copied)
    assert "vote_accepted agent2" in kinds(cmds)  # the same answer once restored
    d.answer("agent3", "```python\ndef inc(x):\n    return 1 + x\n```")
    d.play(
        [("agent1", "vote", "agent1"), ("agent2", "vote", "agent1"), ("agent3", "vote", "agent3")]
    )
    d.present("agent1", copied)
    assert d.state.final_answer == DOC_INC


def test_tie_goes_to_the_answer_the_others_agree_with():
    d = Driver(question=CODE_TASK)
    d.play(
        [("agent1", "answer", INC_ODD), ("agent2", "answer", INC), ("agent3", "answer", INC_TOO)]
    )
    d.play(
        [("agent1", "vote", "agent1"), ("agent2", "vote", "agent2"), ("agent3", "vote", "agent3")]
    )
    consensus = events(d.last)[1]
    assert consensus.winner_label == "agent2"  # agent3's code is the same; agent1 stands alone
    assert consensus.votes == {"agent1": 1, "agent2": 1, "agent3": 1}


def test_code_that_cannot_be_right_does_not_win_over_sound_code():
    d = Driver(question=CODE_TASK)
    broken = "```python\ndef inc(x):\n    return (x +\n```"
    other = "```python\ndef dec(x):\n    return x - 1\n```"
    d.play([("agent1", "answer", broken), ("agent2", "answer", other), ("agent3", "answer", INC)])
    d.play(
        [("agent1", "vote", "agent1"), ("agent2", "vote", "agent1"), ("agent3", "vote", "agent3")]
    )
    consensus = events(d.last)[1]
    assert consensus.winner_label == "agent3"
    assert consensus.votes == {"agent1": 2, "agent2": 0, "agent3": 1}


def test_single_agent_answers_votes_for_itself_and_presents():
    d = Driver(make_config(1))
    assert kinds(d.last) == ["run_created", "publish agent1"]
    assert kinds(d.answer("agent1", A1)) == [
        "answer_accepted agent1",
        "publish agent1",
        "verdict accepted",
    ]
    tools = d.turn("agent1").tools
    assert [t["function"]["name"] for t in tools] == ["new_answer", "vote"]
    assert tools[1]["function"]["parameters"]["properties"]["agent_id"]["enum"] == ["agent1"]
    assert kinds(d.vote("agent1", "agent1")) == [
        "vote_accepted agent1",
        "consensus",
        "presentation_started agent1",
        "present agent1",
        "verdict accepted",
    ]
    assert kinds(d.present("agent1", "Paris")) == [
        "final_answer agent1",
        "run_finished",
        "verdict accepted",
    ]
    assert d.state.status == "completed"


def test_empty_presentation_falls_back_to_stored_answer():
    d = Driver(make_config(1))
    d.answer("agent1", A1)
    d.vote("agent1", "agent1")
    cmds = d.present("agent1", " \n ")
    final, finished = events(cmds)
    assert final.content == A1 and final.fallback
    assert finished.status == "completed" and finished.winner == "alpha"
    assert "agent1.1" in finished.message
    assert d.state.final_answer == A1


CODE_ANSWER = (
    "Sort, then compare neighbours:\n```python\nfrom typing import List\n\n\n"
    "def has_close(numbers: List[float], threshold: float) -> bool:\n"
    "    ordered = sorted(numbers)\n"
    "    return any(b - a < threshold for a, b in zip(ordered, ordered[1:]))\n```"
)


@pytest.mark.parametrize(
    ("presentation", "why"),
    [
        ("Use sorting.", "presentation far shorter than the answer (12 of"),
        (
            "Sort the numbers, then compare each neighbouring pair with the threshold: two "
            "numbers closer than it are neighbours once sorted.\n```python\ndef close(x, t):\n"
            "    return True\n```",
            "presentation no longer defines has_close",
        ),
        (
            CODE_ANSWER.replace("    return any(", "    return any((("),
            "presentation code no longer parses as Python",
        ),
    ],
    ids=["far shorter", "function lost", "broken code"],
)
def test_a_presentation_that_lost_the_answer_falls_back_saying_why(presentation, why):
    d = Driver(make_config(1))
    d.answer("agent1", CODE_ANSWER)
    d.vote("agent1", "agent1")
    final, finished = events(d.present("agent1", presentation))
    assert final.content == CODE_ANSWER and final.fallback
    assert finished.status == "completed"
    assert finished.message.startswith(why)
    assert finished.message.endswith("the stored answer agent1.1 was used")


def test_a_presentation_that_keeps_the_answer_is_the_final_answer():
    d = Driver(make_config(1))
    d.answer("agent1", CODE_ANSWER)
    d.vote("agent1", "agent1")
    presentation = CODE_ANSWER.replace("Sort, then compare neighbours:", "Sorted neighbours:")
    final, finished = events(d.present("agent1", presentation))
    assert final.content == presentation and not final.fallback
    assert finished.message == ""


def test_a_code_change_the_tasks_examples_cannot_check_keeps_the_voted_answer():
    """A presenter's rewrite of the code is checked by the task's examples when it has
    some; without them nothing checks it, and the answer the votes chose stands."""
    changed = CODE_ANSWER.replace("b - a < threshold", "abs(b - a) <= threshold")
    d = Driver(make_config(1))  # "What is the capital of France?": no examples
    d.answer("agent1", CODE_ANSWER)
    d.vote("agent1", "agent1")
    final, finished = events(d.present("agent1", changed))
    assert final.content == CODE_ANSWER and final.fallback
    assert finished.message.startswith("the presentation changes the answer's code")
    task = 'Complete:\n```python\ndef has_close(numbers, threshold):\n    """\n    >>> has_close([1.0, 1.5], 1.0)\n    True\n    """\n```'
    checked = Driver(make_config(1), question=task)
    checked.answer("agent1", CODE_ANSWER)
    checked.vote("agent1", "agent1")
    final, _ = events(checked.present("agent1", changed))
    assert final.content == changed and not final.fallback
    # Examples exist, but the rewrite passes none of them: nothing confirms the change
    # (the task's own examples may be wrong, so the answer passed none either).
    failing = Driver(make_config(1), question=task)
    failing.answer("agent1", CODE_ANSWER)
    failing.vote("agent1", "agent1")
    none_pass = CodeCheck(passed=0, total=1, failure="NameError: name 'np' is not defined")
    final, finished = events(failing.present("agent1", changed, check=none_pass))
    assert final.content == CODE_ANSWER and final.fallback
    assert "passes none of the task's examples" in finished.message


def test_presentation_failure_falls_back_without_retry():
    d = Driver(make_config(1))
    d.answer("agent1", A1)
    d.vote("agent1", "agent1")
    cmds = d.fail("agent1", "provider error 503")
    assert kinds(cmds) == ["final_answer agent1", "run_finished", "verdict accepted"]
    final, finished = events(cmds)
    assert final.fallback and final.content == A1
    assert finished.status == "completed" and "provider error 503" in finished.message


def test_presentation_timeout_falls_back():
    d = Driver(make_config(1, turn_timeout=60))
    d.answer("agent1", A1)
    d.vote("agent1", "agent1")
    d.start("agent1")
    assert kinds(d.tick(59.9)) == []
    assert kinds(d.tick(0.1)) == ["cancel agent1-t3", "final_answer agent1", "run_finished"]
    assert events(d.last)[0].fallback
    assert d.state.status == "completed"


def test_turn_started_event_and_redelivery():
    d = Driver(make_config(1), autostart=False)
    assert kinds(d.start("agent1", worker="w1")) == ["turn_started agent1", "verdict accepted"]
    assert events(d.last)[0].delivery == 1
    # The same report again (the adapter redelivered it): accepted, no second event.
    assert kinds(d.start("agent1", worker="w1")) == ["verdict accepted"]
    # Worker w1 died and w2 took the turn.
    assert kinds(d.start("agent1", worker="w2", delivery=2)) == [
        "turn_started agent1",
        "verdict accepted",
    ]
    started = events(d.last)[0]
    assert (started.delivery, started.phase, started.number) == (2, "coordinate", 1)
    # A first delivery to yet another worker is a duplicate publish, not a redelivery.
    assert kinds(d.start("agent1", worker="w3", delivery=1)) == ["verdict stale"]


def test_reports_without_the_turn_token_are_refused():
    d = Driver(make_config(2))
    turn_id = d.turn_id("agent1")
    before = d.state
    assert kinds(d.answer("agent1", A1, token="forged")) == ["verdict stale"]
    assert kinds(d.start("agent1", worker="w9", delivery=2, token="nope")) == ["verdict stale"]
    # agent2's token does not open agent1's turn.
    other = d.token(d.turn_id("agent2"))
    assert kinds(d.answer("agent1", A1, turn_id=turn_id, token=other)) == ["verdict stale"]
    assert d.state == before
    assert verdict_of(d.answer("agent1", A1)).status == "accepted"
    # The token dies with its turn.
    assert kinds(d.answer("agent1", A2, turn_id=turn_id, attempt=2)) == ["verdict stale"]


def test_multi_turn_history_is_in_the_prompt():
    history = [
        ChatMessage(role="user", content="What is the capital of Spain?"),
        ChatMessage(role="assistant", content="Madrid."),
    ]
    d = Driver(make_config(1), question="And of France?", history=history)
    messages = d.turn("agent1").messages
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1:3] == history
    assert "And of France?" in messages[-1].content


def test_everything_agents_read_uses_labels_only():
    d = Driver()
    _answers_then_fresh_turns(d)
    d.vote("agent1", "alpha")
    d.vote("agent1", "beta", attempt=2)
    d.vote("agent1", "agent1", attempt=3)  # discarded: the answers changed
    d.vote("agent2", "agent1")  # discarded too
    d.play(
        [("agent2", "vote", "agent1"), ("agent3", "vote", "agent1"), ("agent1", "vote", "agent1")]
    )
    texts = [m.content for r in d.requests() for m in r.messages]
    texts += [str(r.tools) for r in d.requests()]
    texts += [c.verdict.message for c in d.log if c.kind == "reply_verdict"]
    for text in texts:
        for config_id in ("alpha", "beta", "gamma"):
            assert config_id not in text, text
    assert d.state.status == "presenting"


def _turn_requests_of_a_team(n: int, policy: str = "finish") -> int:
    """N agents answer one after another (each distinct), then all vote for agent1."""
    d = Driver(make_config(n, restart_policy=policy))
    for i in range(1, n + 1):
        d.answer(f"agent{i}", f"Answer {i}: Paris, reason {i} " + "word " * i, dt=0.5)
    for i in range(1, n + 1):
        if d.state.status == "running":
            d.vote(f"agent{i}", "agent1", dt=0.1)
    assert d.state.status == "presenting", d.state.status
    return len(d.requests())


@pytest.mark.parametrize("n", [3, 6, 10, 20])
def test_large_teams_publish_at_most_3n_plus_1_turn_requests(n):
    # (`interrupt` restarts first answers too, by its definition: not bounded so.)
    assert _turn_requests_of_a_team(n) <= 3 * n + 1

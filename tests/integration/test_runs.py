"""Whole runs through NATS: orchestrator service + worker service + fake model via litellm.

Each fake model behaves like an agent (answers from the conversation), so these tests
hold however the turns interleave; they assert on the run's events and result.
"""

from __future__ import annotations

import pytest

from tests.support.fakes.agents import offered_tools, study_agent
from tests.support.fakes.openai_server import answer, error, hang, text, vote

pytestmark = pytest.mark.timeout(90)

A1 = "Canberra is the capital of Australia."
A2 = "The capital of Australia is Canberra, chosen as a compromise between Sydney and Melbourne."
A3 = "Australia's capital city is Canberra, in the Australian Capital Territory."
FINAL = f"{A2} (final)"
"""A presentation as full as the winning answer (a much shorter one is not taken)."""


async def test_three_agents_answer_then_converge(stack):
    for model, mine in (("m1", A1), ("m2", A2), ("m3", A3)):
        stack.fake.behave(model, study_agent(mine, "agent2", presentation=FINAL))
    summary = await stack.run("What is the capital of Australia?", stack.team(["m1", "m2", "m3"]))

    assert summary.status == "completed"
    assert summary.winner == "a2"
    assert summary.final_answer == FINAL
    assert sorted(a.content for a in summary.answers) == sorted([A1, A2, A3])
    assert {v.voter: v.target for v in summary.votes.values()} == {
        "a1": "a2",
        "a2": "a2",
        "a3": "a2",
    }
    assert stack.events[0].kind == "run_created"
    assert stack.events[-1].kind == "run_finished"
    assert [e.kind for e in stack.events[-2:]] == ["final_answer", "run_finished"]
    chunks = stack.kinds("chunk")
    assert chunks and all(c.label in {"agent1", "agent2", "agent3"} for c in chunks)


async def test_votes_split_two_one(stack):
    stack.fake.behave("m1", study_agent(A1, "agent3"))
    stack.fake.behave("m2", study_agent(A2, "agent3"))
    stack.fake.behave("m3", study_agent(A3, "agent1", presentation="three wins"))
    summary = await stack.run("capital?", stack.team(["m1", "m2", "m3"]))
    assert (summary.status, summary.winner, summary.final_answer) == (
        "completed",
        "a3",
        "three wins",
    )
    consensus = stack.kinds("consensus")[-1]
    assert consensus.votes == {"agent1": 1, "agent2": 0, "agent3": 2}


async def test_three_way_tie_goes_to_the_answer_the_others_agree_with_most(stack):
    # A2 shares the most words with A1 and A3 (docs/coordination.md, "The winner").
    stack.fake.behave("m1", study_agent(A1, "agent2"))
    stack.fake.behave("m2", study_agent(A2, "agent3", presentation="two wins"))
    stack.fake.behave("m3", study_agent(A3, "agent1"))
    summary = await stack.run("capital?", stack.team(["m1", "m2", "m3"]))
    assert (summary.winner, summary.final_answer) == ("a2", "two wins")
    assert stack.kinds("consensus")[-1].votes == {"agent1": 1, "agent2": 1, "agent3": 1}


async def test_vote_for_unknown_label_is_rejected_and_retried(stack):
    stack.fake.script(
        "m1", [answer(A1), vote("agent9", "typo"), vote("agent1", "fixed"), text("done")]
    )
    summary = await stack.run("capital?", stack.team(["m1"]))
    assert summary.status == "completed"
    rejected = stack.kinds("workflow_rejected")
    assert len(rejected) == 1 and rejected[0].tool == "vote"
    assert "agent1" in rejected[0].error and "agent9" not in rejected[0].error
    # The retry within the same turn carried the rejection text back to the model.
    retry = stack.fake.requests_for("m1")[2]
    tool_results = [m for m in retry.messages if m.get("role") == "tool"]
    assert tool_results and rejected[0].error in tool_results[-1]["content"]


async def test_agent_whose_provider_always_fails_is_marked_failed(stack):
    stack.fake.behave("m1", study_agent(A1, "agent1", presentation="still fine"))
    stack.fake.behave("m2", lambda request: error(500, "upstream exploded"))
    summary = await stack.run("capital?", stack.team(["m1", "m2"], max_agent_failures=2))
    assert summary.status == "completed"
    assert summary.final_answer == "still fine"
    assert summary.agents["a2"] == "failed"
    failed = stack.kinds("agent_failed")
    assert [f.agent for f in failed] == ["a2"] and "upstream exploded" in failed[0].error


async def test_single_agent_answers_votes_and_presents(stack):
    stack.fake.script("m1", [answer(A1), vote("agent1", "mine"), text("Canberra.")])
    summary = await stack.run("capital?", stack.team(["m1"]))
    assert (summary.status, summary.winner, summary.final_answer) == (
        "completed",
        "a1",
        "Canberra.",
    )
    assert [e.kind for e in stack.events if e.kind in ("answer_accepted", "vote_accepted")] == [
        "answer_accepted",
        "vote_accepted",
    ]


async def test_deadline_without_answers_times_out(stack):
    stack.fake.script("m1", [hang(5.0)])
    stack.fake.script("m2", [hang(5.0)])
    summary = await stack.run(
        "capital?", stack.team(["m1", "m2"], orchestrator_timeout_seconds=1.0)
    )
    assert summary.status == "timed_out"
    assert "no agent" in summary.message.lower()
    assert summary.final_answer is None


async def test_deadline_with_an_answer_presents_the_best_so_far(stack):
    stack.fake.behave("m1", study_agent(A1, "agent1", presentation="best so far"))
    stack.fake.script("m2", [hang(8.0)])
    summary = await stack.run(
        "capital?", stack.team(["m1", "m2"], orchestrator_timeout_seconds=2.0)
    )
    assert stack.kinds("deadline_reached")
    assert (summary.status, summary.winner, summary.final_answer) == (
        "completed",
        "a1",
        "best so far",
    )


def _eager(stack):
    def eager(request):
        # Tries to answer whenever it may: with the cap at 1 it is offered only vote.
        if not offered_tools(request):
            return text("final")
        if "new_answer" in offered_tools(request):
            return answer(f"{A1} take {len(stack.fake.requests_for('m1'))}")
        return vote("agent1", "only choice")

    return eager


async def test_answer_cap_offers_only_vote(stack):
    stack.fake.behave("m1", _eager(stack))
    stack.fake.behave("m2", study_agent(A2, "agent1"))
    summary = await stack.run("capital?", stack.team(["m1", "m2"], max_new_answers_per_agent=1))
    assert summary.status == "completed" and len(summary.answers) == 2
    second = stack.fake.requests_for("m1")[1]
    assert offered_tools(second.body) == ["vote"]


async def test_a_lone_agent_at_its_cap_votes_without_a_model_call(stack):
    """Its turn could only vote for its own answer: the vote is recorded, no call made."""
    stack.fake.behave("m1", _eager(stack))
    summary = await stack.run("capital?", stack.team(["m1"], max_new_answers_per_agent=1))
    assert (summary.status, summary.final_answer) == ("completed", "final")
    (first, presentation) = stack.fake.requests_for("m1")
    assert offered_tools(first.body) == ["new_answer"] and not offered_tools(presentation.body)
    (voted,) = stack.kinds("vote_accepted")
    assert (voted.target, voted.reason) == ("agent1", "the only answer so far")


async def test_interrupt_policy_cancels_a_running_first_answer(stack):
    stack.fake.behave("m1", study_agent(A1, "agent1", presentation="fast wins"))
    # m2's first answer streams slowly; under interrupt it is cancelled when m1 answers.
    slow_then_normal = study_agent(A2, "agent1")
    calls = {"n": 0}

    def m2(request):
        calls["n"] += 1
        if calls["n"] == 1:
            return answer(A2, tokens=200, token_delay=0.02)
        return slow_then_normal(request)

    stack.fake.behave("m2", m2)
    summary = await stack.run("capital?", stack.team(["m1", "m2"], restart_policy="interrupt"))
    assert summary.status == "completed"
    interrupted = [r for r in stack.kinds("restart") if r.label == "agent2" and r.interrupted]
    assert interrupted, "agent2's slow first turn should have been interrupted"


async def test_finish_policy_lets_a_running_first_answer_complete(stack):
    stack.fake.behave("m1", study_agent(A1, "agent2", presentation="done"))
    calls = {"n": 0}
    normal = study_agent(A2, "agent2")

    def m2(request):
        calls["n"] += 1
        if calls["n"] == 1:
            return answer(A2, tokens=100, token_delay=0.01)
        return normal(request)

    stack.fake.behave("m2", m2)
    summary = await stack.run("capital?", stack.team(["m1", "m2"], restart_policy="finish"))
    assert summary.status == "completed"
    first_answers = [a for a in summary.answers if a.version == "agent2.1"]
    assert first_answers and first_answers[0].content == A2
    # agent2's first turn (the slow one) was not interrupted before it answered.
    answered_at = next(a.ts for a in stack.kinds("answer_accepted") if a.label == "agent2")
    early = [r for r in stack.kinds("restart") if r.label == "agent2" and r.ts < answered_at]
    assert not early

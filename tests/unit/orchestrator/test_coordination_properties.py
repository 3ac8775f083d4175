"""Invariants of ``apply`` under arbitrary report sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from massgen_orchestrator.commands import ReplyVerdict
from massgen_orchestrator.state import RunState, next_wakeup
from orchestrator_driver import Driver, make_config

LABELS = ["agent1", "agent2", "agent3"]
ACTIONS = st.tuples(
    st.sampled_from(["answer", "vote", "fail", "start", "tick", "present", "none"]),
    st.sampled_from(LABELS),
    st.sampled_from(["Paris", "Lyon is nice", "Paris is the capital", "agent1", "agent3"]),
    st.floats(min_value=0, max_value=40),
)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(ACTIONS, max_size=40),
    policy=st.sampled_from(["finish", "interrupt"]),
    novelty=st.sampled_from(["lenient", "balanced", "strict"]),
)
def test_invariants_hold_for_any_report_sequence(steps, policy, novelty):
    d = Driver(
        make_config(
            3,
            timeout=400,
            turn_timeout=60,
            restart_policy=policy,
            answer_novelty_requirement=novelty,
            max_new_answers_per_agent=2,
            max_agent_failures=2,
        )
    )
    attempts: dict[str, int] = {}
    for action, label, text, dt in steps:
        turn_id = d.turn_id(label)
        attempts[turn_id] = attempts.get(turn_id, 0) + 1
        attempt = attempts[turn_id]
        if action == "answer":
            cmds = d.answer(label, text, attempt=attempt, dt=dt)
        elif action == "vote":
            cmds = d.vote(label, text, attempt=attempt, dt=dt)
        elif action == "fail":
            cmds = d.fail(label, dt=dt)
        elif action == "start":
            cmds = d.start(label, dt=dt)
        elif action == "present":
            cmds = d.present(label, text, dt=dt)
        elif action == "none":
            cmds = d.submit(label, [], attempt=attempt, dt=dt)
        else:
            cmds = d.tick(dt)
        replies = [c for c in cmds if isinstance(c, ReplyVerdict)]
        assert len(replies) == (0 if action == "tick" else 1)
        assert not replies or cmds[-1] is replies[0]
        state = d.state
        assert RunState.model_validate_json(state.model_dump_json()) == state
        wake = next_wakeup(state)
        assert (wake is None) == state.over
        assert wake is None or wake > d.now  # a tick right now would change nothing
        for agent in state.agents:
            assert agent.answers <= 2
            assert not (agent.turn and agent.retry_at)
            assert not (agent.failed and (agent.turn or agent.retry_at))
            if agent.vote:
                assert agent.vote.answer_set_version == state.answer_set_version
        if state.status == "presenting":
            assert sum(a.turn is not None for a in state.agents) == 1
    # Drive the run to its end with time alone.
    for _ in range(50):
        if d.state.over:
            break
        d.tick(next_wakeup(d.state) - d.now)
    assert d.state.over

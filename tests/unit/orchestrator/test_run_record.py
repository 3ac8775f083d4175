"""The contract between the orchestrator's private run state and its readers.

The gateway and the API read runs from the KV bucket as ``massgen_proto.record.RunRecord``;
every field of it is required, so a rename in ``RunState`` fails here, not in another
service at run time.
"""

from __future__ import annotations

from massgen_proto.record import RunRecord
from orchestrator_driver import SECRET, Driver, make_config


def test_every_stored_run_state_reads_as_a_run_record():
    d = Driver(make_config(2))
    states = [d.state]
    d.answer("agent1", "Paris.")
    states.append(d.state)
    d.answer("agent2", "It is Paris.")
    d.vote("agent1", "agent2")
    d.vote("agent2", "agent2")
    states.append(d.state)
    for state in states:
        record = RunRecord.model_validate_json(state.model_dump_json())
        assert record.run_id == state.run_id and record.status == state.status
        assert record.secret == SECRET and record.config == state.config
        assert record.winner_label == state.winner_label
        assert [(a.agent_id, a.label) for a in record.agents] == [
            (a.agent_id, a.label) for a in state.agents
        ]
        for agent, stored in zip(record.agents, state.agents, strict=True):
            if stored.turn is None:
                assert agent.turn is None
            else:
                assert (agent.turn.turn_id, agent.turn.phase) == (
                    stored.turn.turn_id, stored.turn.phase
                )  # fmt: skip
    assert states[-1].status == "presenting" and record.winner_label == "agent2"


def test_the_previous_run_of_a_session_turn_reaches_the_run_record():
    from massgen_orchestrator.coordination import new_run
    from orchestrator_driver import make_config

    state, _ = new_run("r2", "And now?", make_config(1), [], 1000.0, "s", previous_run_id="r1")
    assert RunRecord.model_validate_json(state.model_dump_json()).previous_run_id == "r1"
    fresh, _ = new_run("r3", "Again?", make_config(1), [], 1000.0, "s")
    assert RunRecord.model_validate_json(fresh.model_dump_json()).previous_run_id is None

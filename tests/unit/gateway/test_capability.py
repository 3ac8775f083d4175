"""capability.py: the turn-capability check of every gateway tool request (pure)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from massgen_gateway.capability import REASONS, RunCapabilities, check
from massgen_orchestrator import coordination
from massgen_orchestrator.coordination import new_run
from massgen_proto.config import parse_config
from massgen_proto.ids import turn_token

SECRET = "s3cret-of-the-run"


@given(secret=st.text(min_size=1, max_size=64), turn_id=st.text(max_size=80))
def test_proto_turn_token_is_the_orchestrators(secret: str, turn_id: str) -> None:
    assert turn_token(secret, turn_id) == coordination.turn_token(secret, turn_id)


def test_turn_token_shape() -> None:
    token = turn_token(SECRET, "r1-agent1-t1")
    assert len(token) == 32 and int(token, 16) >= 0
    assert token != turn_token(SECRET, "r1-agent1-t2") != turn_token("other", "r1-agent1-t1")


def _state() -> dict[str, Any]:
    """A real run state as the orchestrator stores it: two agents, first turns published."""
    config = parse_config({"agents": [
        {"id": "alpha", "backend": {"type": "openai", "model": "gpt-test"}},
        {"id": "beta", "backend": {"type": "openai", "model": "gpt-test"}},
    ]})  # fmt: skip
    state, _ = new_run("r1", "question?", config, [], 1000.0, SECRET)
    return json.loads(state.model_dump_json())


@pytest.fixture
def state() -> dict[str, Any]:
    return _state()


def ask(state: dict[str, Any], index: int = 0, **override: Any) -> dict[str, Any]:
    """What the worker of agent ``index``'s current turn sends."""
    agent = state["agents"][index]
    turn = agent["turn"]
    fields = {
        "agent_id": agent["agent_id"], "label": agent["label"], "phase": turn["phase"],
        "turn_id": turn["turn_id"], "token": turn_token(SECRET, turn["turn_id"]),
    }  # fmt: skip
    fields.update(override)
    return fields


def test_the_current_turns_token_is_allowed(state: dict[str, Any]) -> None:
    caps = RunCapabilities.from_state(state, revision=3)
    assert caps.run_id == "r1" and caps.revision == 3 and not caps.over
    assert check(caps, **ask(state, 0)) is None
    assert check(caps, **ask(state, 1)) is None


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"token": "0" * 32}, "bad_token"),
        ({"token": ""}, "missing_token"),
        ({"token": "é\udcff" * 20}, "bad_token"),  # not ASCII: refused, never an exception
        ({"turn_id": "r1-agent1-t0"}, "stale_turn"),
        ({"turn_id": None}, "missing_turn"),
        ({"phase": "present"}, "wrong_phase"),
        ({"label": "agent2"}, "wrong_label"),
        ({"agent_id": "gamma"}, "unknown_agent"),
    ],
)
def test_refusals(state: dict[str, Any], override: dict[str, Any], reason: str) -> None:
    caps = RunCapabilities.from_state(state, revision=1)
    assert check(caps, **ask(state, 0, **override)) == reason
    assert reason in REASONS


def test_another_agents_token_is_refused(state: dict[str, Any]) -> None:
    caps = RunCapabilities.from_state(state, revision=1)
    theirs = ask(state, 1)["token"]
    assert check(caps, **ask(state, 0, token=theirs)) == "bad_token"
    # ...and naming the other agent with one's own turn id does not help either.
    assert check(caps, **ask(state, 1, turn_id=state["agents"][0]["turn"]["turn_id"])) == (
        "stale_turn"
    )


def test_a_token_dies_with_its_turn(state: dict[str, Any]) -> None:
    old = ask(state, 0)
    later = copy.deepcopy(state)
    later["agents"][0]["turn"]["turn_id"] = "r1-agent1-t2"
    caps = RunCapabilities.from_state(later, revision=2)
    assert check(caps, **old) == "stale_turn"
    assert check(caps, **ask(later, 0)) is None
    later["agents"][0]["turn"] = None  # the turn ended, no new one yet
    assert check(RunCapabilities.from_state(later, revision=3), **old) == "no_turn"


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "timed_out"])
def test_nothing_is_allowed_once_the_run_is_over(state: dict[str, Any], status: str) -> None:
    request = ask(state, 0)
    state["status"] = status
    assert check(RunCapabilities.from_state(state, revision=9), **request) == "run_over"


def test_presenting_run_allows_the_present_turn(state: dict[str, Any]) -> None:
    state["status"] = "presenting"
    state["agents"][0]["turn"]["phase"] = "present"
    caps = RunCapabilities.from_state(state, revision=4)
    assert check(caps, **ask(state, 0)) is None
    assert check(caps, **ask(state, 0, phase="coordinate")) == "wrong_phase"


def test_unknown_run_and_a_run_without_secret(state: dict[str, Any]) -> None:
    assert check(None, **ask(state, 0)) == "unknown_run"
    request = ask(state, 0)
    state["secret"] = ""
    # turn_token("", ...) is computable by anyone: such a run allows nothing.
    forged = {**request, "token": turn_token("", request["turn_id"])}
    assert check(RunCapabilities.from_state(state, revision=1), **forged) == "no_secret"

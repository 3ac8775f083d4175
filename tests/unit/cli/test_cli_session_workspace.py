"""Which run a session's next turn starts its workspaces from (``Session.previous_run_id``)."""

from __future__ import annotations

import pytest
from massgen_cli.session import Session, TurnRecord
from massgen_proto.messages import CreateRun
from pydantic import ValidationError


def _turn(number: int, status: str = "completed", winner: str | None = "a1") -> TurnRecord:
    return TurnRecord(number, f"q{number}", f"a{number}", status, winner, f"r{number}", None, 1.0)


def test_the_last_completed_turn_since_the_clear_is_the_previous_run(tmp_path):
    session = Session.create(tmp_path, {"config": "team.yaml"})
    assert session.previous_run_id() is None
    session.record(_turn(1))
    assert session.previous_run_id() == "r1"
    # A failed or cancelled turn (no winner, no final workspace) is skipped over.
    session.record(_turn(2, status="failed", winner=None))
    session.record(_turn(3, status="cancelled", winner=None))
    assert session.previous_run_id() == "r1"
    session.record(_turn(4))
    assert session.previous_run_id() == "r4"
    # /clear: the next turn starts with empty workspaces, also after a resume.
    session.clear()
    assert session.previous_run_id() is None
    assert Session.open(tmp_path, session.id).previous_run_id() is None
    session.record(_turn(5, status="failed", winner=None))
    assert session.previous_run_id() is None
    session.record(_turn(6))
    assert session.previous_run_id() == "r6"


def test_a_previous_run_id_is_one_subject_token():
    assert CreateRun(question="q", config={}, previous_run_id="ab-12_c").previous_run_id
    for bad in ("../r1", "r1/final_workspace", "", "a" * 65, "r 1"):
        with pytest.raises(ValidationError, match="previous_run_id"):
            CreateRun(question="q", config={}, previous_run_id=bad)

"""``massgen --session ID "question"`` as a process: each turn starts from the files the
last turn's winner left, a turn after ``/clear`` starts empty."""

from __future__ import annotations

import pytest
from e2e_support import Cli, team_config
from massgen_cli.session import Session

from tests.support.fakes.openai_server import answer, text, tool_call, vote

pytestmark = pytest.mark.timeout(300)

WRITE = "mcp__workspace__write_file"
EDIT = "mcp__workspace__edit_file"
LIST = "mcp__workspace__list_directory"


def test_session_turns_carry_the_winners_files_until_clear(cli: Cli, fake_model):
    config = team_config(fake_model.base_url, ["m1"], ids=["ann"])
    config["agents"][0]["backend"]["cwd"] = "ws"
    path = cli.write_config(config)
    session = Session.create(cli.cwd / ".massgen" / "sessions", {"config": str(path)})

    def turn(question: str, *steps) -> str:
        fake_model.script("m1", [*steps, vote("agent1", "done"), text(f"Final: {question}")])
        result = cli.run("--session", session.id, "--display", "simple", question)
        assert result.code == 0, result.stderr
        return session.turns()[-1].run_id

    workspaces = cli.cwd / ".massgen" / "workspaces"
    first = turn("Start todo.md", tool_call(WRITE, {"path": "todo.md", "content": "- a\n"}),
                 answer("todo.md started"))  # fmt: skip
    second = turn(
        "Add b", tool_call(EDIT, {"path": "todo.md", "old_text": "- a\n", "new_text": "- a\n- b\n"}),
        answer("b added"),
    )  # fmt: skip
    assert (workspaces / second / "ws" / "todo.md").read_text() == "- a\n- b\n"
    assert (workspaces / second / "final_workspace" / "todo.md").read_text() == "- a\n- b\n"
    assert (workspaces / first / "final_workspace" / "todo.md").read_text() == "- a\n"

    Session.open(cli.cwd / ".massgen" / "sessions", session.id).clear()  # what /clear does
    third = turn("What is there?", tool_call(LIST, {}), answer("nothing"))
    assert list((workspaces / third / "ws").iterdir()) == []
    listed = [m for m in fake_model.requests_for("m1")[-3].messages if m.get("role") == "tool"]
    assert listed and str(listed[0]["content"]).endswith(":\n(empty)")

"""Multi-turn workspaces: a session's next turn starts from the previous turn's winner's
final workspace (a writable copy in each agent's workspace, the original read-only under
``previous_turn/``); ``/clear`` starts empty.

Real nats-server, orchestrator, worker and gateway; the scripted fake model. The CLI
test goes through the CLI's own session code (``Session``, ``run_session_turn``,
``StackTarget``) on this stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from massgen_cli.commands.turn import run_session_turn
from massgen_cli.session import Session
from massgen_cli.targets import StackTarget
from massgen_gateway.sandbox import sandbox_available

from tests.support.fakes.agents import offered_tools, user_text
from tests.support.fakes.openai_server import Step, answer, text, tool_call, vote

pytestmark = pytest.mark.timeout(120)

READ = "mcp__workspace__read_file"
WRITE = "mcp__workspace__write_file"
EDIT = "mcp__workspace__edit_file"
LIST = "mcp__workspace__list_directory"
RUN = "mcp__workspace__execute_command"
V1 = "print('v1')\n"
V2 = "print('v2')\n"


def _results(request: dict[str, Any]) -> list[str]:
    """The tool results the model has seen in this turn so far."""
    return [str(m.get("content")) for m in request.get("messages") or () if m.get("role") == "tool"]


def _coordinating(request: dict[str, Any]) -> bool:
    return "new_answer" in offered_tools(request)


def _agent(calls: list[Step], mine: str, leader: str | None = None, presentation: str = "done"):
    """Make ``calls`` (tool calls), then answer ``mine``; once ``leader`` (agent1's answer,
    by default ``mine``) is among the answers, vote for agent1. Present ``presentation``.
    The calls are made in the answering turn only (not again in the voting turn)."""

    def behave(request: dict[str, Any]) -> Step:
        if not _coordinating(request):
            return text(presentation)
        done = len(_results(request))
        if done < len(calls) and mine not in user_text(request):
            return calls[done]
        if "vote" in offered_tools(request) and (leader or mine) in user_text(request):
            return vote("agent1", "agent1 did the work")
        return answer(mine)

    return behave


async def _final(runs: Path, run_id: str) -> Path:
    """The run's final workspace, once the gateway has saved it."""
    final = runs / run_id / "final_workspace"
    for _ in range(200):
        if final.is_dir():
            return final
        await asyncio.sleep(0.02)
    raise AssertionError(f"no final workspace for {run_id}")


def _team(stack, models: list[str], **backend: Any) -> dict[str, Any]:
    config = stack.team(models)
    for i, agent in enumerate(config["agents"]):
        agent["backend"].update(cwd=f"ws{i + 1}", **backend)
    return config


def _tool_results(stack) -> list[tuple[str, dict[str, Any]]]:
    """(label, tool result) of every tool call of the last run, in order."""
    return [
        (c.label, json.loads(c.text)) for c in stack.kinds("chunk") if c.channel == "tool_result"
    ]


async def test_the_next_turn_edits_what_the_last_winner_wrote(stack, gateway, tmp_path):
    runs = tmp_path / "runs"
    stack.fake.behave("m1", _agent([tool_call(WRITE, {"path": "app.py", "content": V1})],
                                   "Wrote app.py (v1)."))  # fmt: skip
    stack.fake.behave("m2", _agent([], "I would write app.py too.", "Wrote app.py (v1)."))
    config = _team(stack, ["m1", "m2"])
    first = await stack.run("Write app.py", config)
    assert (first.status, first.winner) == ("completed", "a1")
    assert (await _final(runs, first.run_id) / "app.py").read_text() == V1

    # Turn 2: agent1 reads the original, edits its copy, and fails to write the original;
    # agent2 reads its own copy.
    stack.fake.behave("m1", _agent([
        tool_call(LIST, {}),
        tool_call(READ, {"path": "previous_turn/app.py"}),
        tool_call(EDIT, {"path": "app.py", "old_text": "v1", "new_text": "v2"}),
        tool_call(WRITE, {"path": "previous_turn/app.py", "content": "overwritten"}),
    ], "Changed app.py to v2."))  # fmt: skip
    stack.fake.behave("m2", _agent([tool_call(READ, {"path": "app.py"})], "Mine still says v1.",
                                   "Changed app.py to v2."))  # fmt: skip
    second = await stack.run("Now make it print v2", config, previous_run_id=first.run_id)
    assert (second.status, second.winner) == ("completed", "a1")

    results = _tool_results(stack)
    agent1 = [r["content"] for label, r in results if label == "agent1"]
    assert "[FILE] app.py" in agent1[0] and "[LINK] previous_turn" in agent1[0]
    assert agent1[1] == V1
    assert agent1[2].startswith("edited") and "(1 replacement)" in agent1[2]
    assert "Permission denied" in agent1[3] and "previous_turn_read_only" in agent1[3]
    assert [r["content"] for label, r in results if label == "agent2"][0] == V1
    denied = stack.kinds("tool_denied")
    assert denied and {(d.label, d.rule) for d in denied} == {("agent1", "previous_turn_read_only")}

    previous = runs / first.run_id / "final_workspace"
    assert (previous / "app.py").read_text() == V1  # the original is untouched
    here = runs / second.run_id
    assert (here / "ws1" / "app.py").read_text() == V2  # agent1's copy, edited
    assert (here / "ws2" / "app.py").read_text() == V1  # agent2's own copy
    for ws in ("ws1", "ws2"):
        link = here / ws / "previous_turn"
        assert link.is_symlink() and link.resolve() == previous.resolve()
    final = await _final(runs, second.run_id)
    assert sorted(p.name for p in final.iterdir()) == ["app.py"]  # the link is left out
    assert (final / "app.py").read_text() == V2

    # The model was told where the previous turn's files are.
    listing = stack.fake.requests_for("m1")[-1].tools
    described = next(t["function"]["description"] for t in listing
                     if t["function"]["name"] == LIST)  # fmt: skip
    assert "previous_turn/" in described and str(previous) in described

    # A run naming a previous run the gateway has no final workspace of starts empty.
    stack.fake.behave("m1", _agent([tool_call(LIST, {})], "Nothing here."))
    stack.fake.behave("m2", _agent([], "Nothing here either.", "Nothing here."))
    third = await stack.run("What is there?", config, previous_run_id="nosuchrun0")
    assert third.status == "completed"
    listed = [r["content"] for label, r in _tool_results(stack) if label == "agent1"]
    assert listed[0].endswith(":\n(empty)")
    assert list((runs / third.run_id / "ws1").iterdir()) == []


@pytest.mark.skipif(not sandbox_available(), reason="bubblewrap is not installed")
async def test_commands_read_the_previous_turn_but_cannot_write_it(stack, gateway, tmp_path):
    runs = tmp_path / "runs"
    stack.fake.behave("m1", _agent([tool_call(WRITE, {"path": "app.py", "content": V1})],
                                   "app.py v1 written."))  # fmt: skip
    config = _team(stack, ["m1"], enable_mcp_command_line=True)
    first = await stack.run("Write app.py", config)
    assert first.status == "completed"
    await _final(runs, first.run_id)

    stack.fake.behave("m1", _agent([
        tool_call(RUN, {"command": "cat previous_turn/app.py && sed -i s/v1/v2/ app.py"}),
        tool_call(RUN, {"command": "echo overwritten > previous_turn/app.py"}),
        tool_call(RUN, {"command": "rm -rf previous_turn/"}),
    ], "app.py changed by sed."))  # fmt: skip
    second = await stack.run("Make it v2", config, previous_run_id=first.run_id)
    assert second.status == "completed"
    outputs = [r["content"] for _, r in _tool_results(stack)]
    assert "print('v1')" in outputs[0] and "Exit code 0" in outputs[0]
    assert "read-only file system" in outputs[1].lower()
    assert "Exit code 0" not in outputs[2]
    assert (runs / first.run_id / "final_workspace" / "app.py").read_text() == V1
    assert (runs / second.run_id / "ws1" / "app.py").read_text() == V2


async def test_a_cli_session_continues_its_files_until_clear(stack, gateway, tmp_path, capsys):
    runs = tmp_path / "runs"
    session = Session.create(tmp_path / "sessions", {"config": "team.yaml"})
    config = _team(stack, ["m1"])
    target = StackTarget(config, None)
    target.nc = stack.nc  # this test's stack stands in for the embedded one
    args = argparse.Namespace(display=None, no_display=True, output="text", no_logs=True,
                              log_dir=None, debug=False)  # fmt: skip

    async def turn(question: str, calls: list[Step], mine: str) -> tuple[Any, list[str]]:
        """Run one turn; its summary and the tool results its model saw."""
        stack.fake.behave("m1", _agent(calls, mine, presentation=f"Final: {mine}"))
        before = len(stack.fake.requests_for("m1"))
        code, summary, _ = await run_session_turn(target, args, session, question, interactive=True)
        assert (code, summary.status) == (0, "completed")
        seen: list[str] = []
        for request in stack.fake.requests_for("m1")[before:]:
            for result in _results({"messages": request.messages}):
                if result not in seen:
                    seen.append(result)
        return summary, seen

    write = tool_call(WRITE, {"path": "notes.md", "content": "- one\n"})
    first, _ = await turn("Start notes.md", [write], "notes.md started.")
    await _final(runs, first.run_id)
    second, seen = await turn("Add a second line", [
        tool_call(READ, {"path": "notes.md"}),
        tool_call(EDIT, {"path": "notes.md", "old_text": "- one\n", "new_text": "- one\n- two\n"}),
    ], "second line added.")  # fmt: skip
    assert seen[0] == "- one\n" and seen[1].startswith("edited")
    assert (runs / second.run_id / "ws1" / "notes.md").read_text() == "- one\n- two\n"
    assert (await _final(runs, second.run_id) / "notes.md").read_text() == "- one\n- two\n"
    assert (runs / first.run_id / "final_workspace" / "notes.md").read_text() == "- one\n"
    assert session.previous_run_id() == second.run_id

    session.clear()  # what /clear does
    third, seen = await turn("Fresh start: what is in your workspace?", [tool_call(LIST, {})],
                             "the workspace is empty.")  # fmt: skip
    assert seen[0].endswith(":\n(empty)")
    workspace = runs / third.run_id / "ws1"
    assert workspace.is_dir() and list(workspace.iterdir()) == []
    assert [t.run_id for t in session.turns()] == [first.run_id, second.run_id, third.run_id]

"""What the displays show while agents work: answers as written, votes, tool calls."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest
from massgen_cli.display import SimpleDisplay, make_display
from massgen_cli.live import RichDisplay, TerminalDisplay
from massgen_cli.notices import config_warnings, print_warnings
from massgen_cli.runlog import RunLog
from massgen_cli.runs import ReplayClock, load_events, replay
from massgen_cli.view import RunView
from massgen_proto import events as ev
from massgen_proto.messages import CodeCheck
from massgen_proto.summary import summarize
from rich.cells import cell_len

T0 = 1_800_000_000.0
RUN = "run-stream-1"
ANSWER = "The capital of Australia is Canberra, a planned city chosen in 1908."


def _who(n: int) -> dict[str, str]:
    return {"run_id": RUN, "agent": f"a{n}", "label": f"agent{n}"}


def chunk(n: int, channel: str, text: str, at: float) -> ev.Chunk:
    return ev.Chunk(ts=T0 + at, turn_id=f"t{n}", channel=channel, text=text, **_who(n))


def streamed_run() -> list[ev.RunEvent]:
    """agent1 reads a file, writes its answer in pieces; agent2 is denied a write and
    votes; agent3 is still writing when the view is drawn."""
    read = {"id": "c1", "name": "mcp__fs__read_file"}
    pieces = ["The capital of Australia ", "is Canberra, a planned ", "city chosen in 1908."]
    return [
        ev.RunCreated(run_id=RUN, ts=T0, question="What is the capital of Australia?",
                      agents=[ev.AgentInfo(id=f"a{n}", label=f"agent{n}", provider="p",
                                           model="m") for n in (1, 2, 3)],
                      deadline=T0 + 600),
        *[ev.TurnStarted(ts=T0 + 0.1, turn_id=f"t{n}", phase="coordinate", number=1, **_who(n))
          for n in (1, 2, 3)],
        chunk(1, "content", "Let me check my notes.", 0.5),
        chunk(1, "tool_args", json.dumps({**read, "delta": '{"path": "no'}), 0.6),
        chunk(1, "tool_call", json.dumps({**read, "arguments": {"path": "notes.txt"}}), 0.7),
        chunk(1, "tool_result", json.dumps({**read, "content": "Canberra: capital since 1913"}),
              0.8),
        *[chunk(1, "answer", piece, 1.0 + i * 0.1) for i, piece in enumerate(pieces)],
        chunk(1, "tool_call", json.dumps({"id": "n", "name": "new_answer",
                                          "arguments": {"content": ANSWER}}), 1.4),
        ev.AnswerAccepted(ts=T0 + 1.5, version="agent1.1", content=ANSWER, **_who(1)),
        ev.ToolDenied(ts=T0 + 1.6, turn_id="t2", tool="mcp__fs__write_file", path="/etc/passwd",
                      resolved="/etc/passwd", rule="outside_roots", phase="coordinate",
                      **_who(2)),
        chunk(2, "tool_call", json.dumps({"id": "v", "name": "vote", "arguments": {
            "agent_id": "agent1", "reason": "names the year"}}), 1.7),
        chunk(2, "vote", json.dumps({"target": "agent1", "reason": "names the year"}), 1.7),
        ev.VoteAccepted(ts=T0 + 1.8, target="agent1", target_agent="a1",
                        reason="names the year", **_who(2)),
        chunk(3, "answer", "Canberra, in the ", 1.9),
        chunk(3, "answer", "ACT", 2.0),
    ]  # fmt: skip


def test_panel_text_shows_the_answer_as_written_the_vote_and_tool_lines():
    view = RunView()
    for event in streamed_run():
        view.apply(event)
    one, two, three = (view.agents[f"agent{n}"] for n in (1, 2, 3))
    assert one.text.splitlines() == [
        "── turn 1 ──",
        "Let me check my notes.",
        '→ mcp__fs__read_file(path="notes.txt")',
        "← mcp__fs__read_file: Canberra: capital since 1913",
        "✎ answer:",
        ANSWER,
        "✓ answer agent1.1 accepted",
    ]
    assert two.text.splitlines() == [
        "── turn 1 ──",
        "⛔ mcp__fs__write_file denied /etc/passwd (outside_roots)",
        "☑ voted for agent1: names the year",  # once, though the vote was also accepted
    ]
    assert three.text.endswith("✎ answer:\nCanberra, in the ACT")
    assert three.activity == "writing answer" and three.waiting_for(T0 + 4) is None


def test_an_answer_not_streamed_is_shown_when_accepted():
    view = RunView()
    events = streamed_run()
    for event in events[:4]:
        view.apply(event)
    view.apply(ev.AnswerAccepted(ts=T0 + 1, version="agent1.1", content=ANSWER, **_who(1)))
    view.apply(ev.VoteAccepted(ts=T0 + 2, target="agent1", target_agent="a1", reason="same",
                               same_answer=True, **_who(2)))  # fmt: skip
    assert view.agents["agent1"].text.splitlines()[-3:] == [
        "✎ answer:",
        ANSWER,
        "✓ answer agent1.1 accepted",
    ]
    assert view.agents["agent2"].text.splitlines()[-1] == "☑ voted for agent1 (same answer): same"


def test_tool_calls_show_what_the_agent_does_in_its_status():
    view = RunView()
    events = streamed_run()
    for event in events[:6]:
        view.apply(event)
    assert view.agents["agent1"].activity == "calling mcp__fs__read_file"
    view.apply(events[6])
    assert view.agents["agent1"].activity == "running mcp__fs__read_file"


def test_simple_display_prints_providing_answer_voting_and_tool_lines():
    out = io.StringIO()
    display = SimpleDisplay(out, clock=lambda: T0 + 3)
    for event in streamed_run():
        display(event)
    display.close()
    lines = out.getvalue().splitlines()
    assert "[agent1 a1] Let me check my notes." in lines
    assert '[agent1 a1] → mcp__fs__read_file(path="notes.txt")' in lines
    assert "[agent1 a1] ← mcp__fs__read_file: Canberra: capital since 1913" in lines
    start = lines.index("[agent1 a1] ✎ providing answer:")
    assert lines[start + 1] == f"[agent1 a1] {ANSWER}"
    assert lines[start + 2] == "[agent1 a1] ✓ answer agent1.1 accepted"
    assert "[agent2 a2] ⛔ mcp__fs__write_file denied /etc/passwd (outside_roots)" in lines
    vote = lines.index("[agent2 a2] ☑ voting for agent1: names the year")
    assert lines[vote + 1] == "[agent2 a2] ✓ voted for agent1"
    assert lines[-1] == "[agent3 a3] Canberra, in the ACT"  # flushed at close
    assert not any("tool_args" in line or "new_answer" in line for line in lines)


def test_simple_display_prints_a_long_answer_line_in_pieces_as_it_grows():
    out = io.StringIO()
    display = SimpleDisplay(out)
    for event in streamed_run()[:4]:
        display(event)
    for i in range(60):
        display(chunk(1, "answer", f"word{i} ", 1 + i * 0.01))
    printed = out.getvalue().splitlines()
    pieces = [line for line in printed if line.startswith("[agent1 a1] word")]
    assert len(pieces) >= 2  # before the answer ends
    assert all(len(line) <= 140 for line in pieces)


def test_rich_and_terminal_frames_show_the_answer_and_what_the_agent_is_doing():
    rich = RichDisplay(io.StringIO(), clock=lambda: T0 + 3, keys=False)
    rich.console.size = (150, 40)
    terminal = TerminalDisplay(io.StringIO(), clock=lambda: T0 + 3, keys=False)
    for event in streamed_run():
        rich(event)
        terminal(event)
    frame = "\n".join(rich.frame_lines(T0 + 3))
    assert "✎ answer:" in frame and "Canberra, in the ACT" in frame
    assert "☑ voted for agent1: names the year" in frame
    assert "writing answer" in frame  # agent3's status line
    # No colour here: every line is exactly the console's width in cells.
    assert {cell_len(line) for line in rich.frame_lines(T0 + 3)} == {150}
    assert "Canberra, in the ACT" in "\n".join(terminal.render(T0 + 3))


async def test_a_change_is_on_screen_within_one_frame_interval():
    from rich.console import Console

    out = io.StringIO()
    display = RichDisplay(out, keys=False)
    display.console = Console(file=out, width=120, height=30, force_terminal=True)
    display.start()
    events = streamed_run()
    for event in events[:4]:
        display(event)
    await asyncio.sleep(0.1)
    drawn = display.frames
    started = time.monotonic()
    display(chunk(1, "answer", "Canberra", 1.0))
    while display.frames == drawn:
        await asyncio.sleep(0.001)
        assert time.monotonic() - started < 1
    assert time.monotonic() - started < display.min_interval + 0.03
    assert "Canberra" in out.getvalue()
    display.close()
    assert out.getvalue().endswith("\n") and "\x1b[?25h" in out.getvalue()  # cursor back


async def test_replay_shows_what_the_live_view_showed(tmp_path):
    log = RunLog(tmp_path / "run")
    for event in streamed_run():
        log.write(event)
    log.close(summarize(RUN, streamed_run()))
    agent_file = (tmp_path / "run" / "agent_a1.txt").read_text()
    assert f"[answer]\n{ANSWER}" in agent_file and "tool_args" not in agent_file
    events = load_events(tmp_path / "run")
    out = io.StringIO()
    display = make_display("simple", out, clock=ReplayClock(0))
    await replay(events, display, ReplayClock(0), speed=0)
    assert "[agent1 a1] ✎ providing answer:" in out.getvalue()
    assert f"[agent1 a1] {ANSWER}" in out.getvalue()


def test_config_warnings_are_printed_and_kept_in_the_log_folder(tmp_path):
    config = {"agents": [{"id": "a", "backend": {"type": "openai", "model": "gpt-4o-mini",
                                                 "permission_mode": "default"}}]}  # fmt: skip
    warnings = config_warnings(config)
    assert warnings and warnings[0].startswith("agents[0].backend.permission_mode: ignored")
    assert config_warnings({"agents": "not a list"}) == []
    err = io.StringIO()
    print_warnings(warnings, err)
    assert err.getvalue() == f"massgen: warning: {warnings[0]}\n"
    log = RunLog(tmp_path / "run")
    log.write_warnings(warnings)
    log.close(summarize(RUN, streamed_run()))
    assert (tmp_path / "run" / "warnings.txt").read_text() == warnings[0] + "\n"
    assert json.loads((tmp_path / "run" / "status.json").read_text())["warnings"] == warnings


@pytest.mark.parametrize("kind", ["simple", "terminal", "rich_terminal"])
def test_every_display_takes_every_new_channel(kind):
    display = make_display(kind, io.StringIO(), keys=False)
    display.start()
    for event in streamed_run():
        display(event)
    display.close()


def test_rich_display_into_a_file_writes_only_the_last_frame():
    out = io.StringIO()  # not a terminal
    display = RichDisplay(out, clock=lambda: T0 + 3, keys=False)
    display.start()
    for event in streamed_run():
        display(event)
        display._last_frame = 0.0
        display.tick()
    assert display.frames > 5 and out.getvalue() == ""
    display.close()
    assert out.getvalue().count("╭─ agent1 a1") == 1 and "\x1b[" not in out.getvalue()


def test_what_the_check_of_an_answer_found_is_shown_under_it():
    view = RunView()
    for event in streamed_run()[:4]:
        view.apply(event)
    check = CodeCheck(passed=1, total=2, failure="add(1, 2) gave '-1', expected '3'")
    view.apply(
        ev.AnswerAccepted(ts=T0 + 1, version="agent1.1", content=ANSWER, check=check, **_who(1))
    )
    assert view.agents["agent1"].text.splitlines()[-2:] == [
        "✓ answer agent1.1 accepted",
        "  task's examples: 1 of 2 pass; first failure: add(1, 2) gave '-1', expected '3'",
    ]

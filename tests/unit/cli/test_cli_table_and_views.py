"""The coordination table, the display view and the displays, from events built directly."""

from __future__ import annotations

import io
import json

import pytest
from massgen_cli.display import (
    FinalOnlyDisplay,
    SimpleDisplay,
    choose_display_type,
    make_display,
)
from massgen_cli.live import RichDisplay, TerminalDisplay
from massgen_cli.table import RUN_COLUMN, coordination_rows, coordination_table
from massgen_cli.view import RunView
from massgen_proto import events as ev

from tests.support.fakes.run_events import T0, failed_agent_events, restarts_and_tie

TABLE_SNAPSHOT = """\
  t (s) | agent1 (a1)            | agent2 (a2)            | agent3 (a3)            | run
--------+------------------------+------------------------+------------------------+-----------------------
    0.0 |                        |                        |                        | started: What is the
        |                        |                        |                        | capital of Australia?
    0.5 | started turn 1         |                        |                        |
    1.0 |                        | started turn 1         |                        |
    1.5 |                        |                        | started turn 1         |
    3.5 | answer agent1.1:       |                        |                        |
        | Canberra is the        |                        |                        |
        | capital.               |                        |                        |
    4.0 |                        |                        | error 1: HTTP 500      |
        |                        |                        | upstream exploded      |
    4.5 |                        | answer agent2.1: The   |                        |
        |                        | capital of Australia   |                        |
        |                        | is Canberra, a planned |                        |
        |                        | city.                  |                        |
    5.0 | restart: new answer    |                        |                        |
        | agent2.1               |                        |                        |
    5.5 | started turn 2         |                        |                        |
    6.0 |                        |                        | started turn 2         |
    6.5 |                        |                        | rejected vote: agent9  |
        |                        |                        | has no answer; vote    |
        |                        |                        | for agent1 or agent2   |
    7.0 |                        |                        | answer agent3.1:       |
        |                        |                        | Canberra (ACT) is      |
        |                        |                        | Australia's capital.   |
    7.5 | vote agent2 discarded: |                        |                        |
        | the answers changed    |                        |                        |
        | while it worked        |                        |                        |
    8.0 | restart: new answer    |                        |                        |
        | agent3.1               |                        |                        |
    8.5 |                        | interrupted, restart:  |                        |
        |                        | new answer agent3.1    |                        |
    9.0 | vote agent2: cites why |                        |                        |
    9.5 |                        | vote agent3: names the |                        |
        |                        | territory              |                        |
   10.0 |                        |                        | vote agent1: shortest  |
   10.5 |                        |                        |                        | consensus: agent1 wins
        |                        |                        |                        | (agent1 1, agent2 1,
        |                        |                        |                        | agent3 1)
   11.0 | presenting             |                        |                        |
   12.5 | final: **Canberra** is |                        |                        |
        | the capital.           |                        |                        |
   13.0 |                        |                        |                        | completed
"""


def test_coordination_table_snapshot_with_restarts_and_a_tie():
    assert coordination_table(restarts_and_tie(), width=22) == TABLE_SNAPSHOT


def test_rows_skip_streaming_and_keep_event_order():
    data = coordination_rows(restarts_and_tie())
    assert data.columns == ["agent1", "agent2", "agent3", RUN_COLUMN]
    assert data.names == {"agent1": "a1", "agent2": "a2", "agent3": "a3"}
    texts = [r.text for r in data.rows]
    assert not any("w0" in t for t in texts)
    assert [r.seconds for r in data.rows] == sorted(r.seconds for r in data.rows)
    assert texts[-3:] == [
        "presenting",
        "final: **Canberra** is the capital.",
        "completed",
    ]


def test_failed_agent_and_deadline_rows():
    text = coordination_table(failed_agent_events())
    assert "failed: gave up after 3" in text
    assert "deadline: 0 answer(s)" in text
    assert "timed_out: no answers" in text


def test_long_answers_are_previewed():
    events = restarts_and_tie()[:1] + [
        ev.AnswerAccepted(
            run_id="r",
            ts=T0 + 1,
            agent="a1",
            label="agent1",
            version="agent1.1",
            content="word " * 100,
        ),  # fmt: skip
    ]
    row = coordination_rows(events).rows[-1]
    assert row.text.startswith("answer agent1.1: word word") and row.text.endswith("…")
    assert len(row.text) < 90


def test_view_tracks_statuses_votes_and_final():
    view = RunView()
    statuses: list[dict[str, str]] = []
    for event in restarts_and_tie():
        view.apply(event)
        statuses.append({label: a.status for label, a in view.agents.items()})
    assert "answered agent1.1" in [s["agent1"] for s in statuses]
    assert "restarting" in [s["agent1"] for s in statuses]
    assert "error 1, retry in 0s" in [s["agent3"] for s in statuses]
    assert view.votes == {"agent1": "agent2", "agent2": "agent3", "agent3": "agent1"}
    assert view.agents["agent1"].status == "winner: final answer"
    assert view.agents["agent2"].status == "voted for agent2".replace("2", "3")
    assert view.agents["agent1"].tokens == 52
    assert view.final_answer == "**Canberra** is the capital."
    assert view.orchestrator_line().startswith("answers: agent1.1, agent2.1, agent3.1 | votes:")


def test_view_keeps_only_the_tail_of_long_streams():
    view = RunView()
    view.apply(restarts_and_tie()[0])
    for i in range(3000):
        view.apply(ev.Chunk(run_id="r", ts=T0 + 1, agent="a1", label="agent1", turn_id="t",
                            channel="content", text=f"token{i} "))  # fmt: skip
    text = view.agents["agent1"].text
    assert len(text) <= 4000 and text.endswith("token2999 ")


def test_waiting_agent_is_reported_after_five_seconds():
    view = RunView()
    for event in restarts_and_tie()[:2]:
        view.apply(event)
    agent = view.agents["agent1"]
    started = agent.turn_started
    assert agent.waiting_for(started + 2) is None
    assert agent.waiting_for(started + 7) == pytest.approx(7)
    out = io.StringIO()
    display = SimpleDisplay(out, clock=lambda: started + 12)
    for event in restarts_and_tie()[:2]:
        display(event)
    display.tick()
    display.tick()  # said once per 10 s, not on every tick
    assert out.getvalue().count("waiting for the model (12s") == 1


def _rich_frame(display: RichDisplay, now: float) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, height=30, color_system=None)
    console.print(display.render(now))
    return console.file.getvalue()


def test_rich_frame_has_a_panel_per_agent_statuses_and_the_orchestrator_line():
    display = RichDisplay(io.StringIO(), clock=lambda: T0 + 9, keys=False)
    display.console.size = (120, 30)
    events = restarts_and_tie()
    for event in events[:12]:
        display(event)
    frame = _rich_frame(display, T0 + 12)
    for title in ("agent1 a1", "agent2 a2", "agent3 a3"):
        assert title in frame
    assert "Canberra is the capital." in frame
    assert "answered agent2.1" in frame
    assert "working t2" in frame
    assert "orchestrator answers: agent1.1, agent2.1" in frame
    display.show_table = True
    assert "coordination table" in _rich_frame(display, T0 + 12)


def test_rich_display_end_prints_the_final_answer_as_markdown():
    out = io.StringIO()
    display = RichDisplay(out, clock=lambda: T0 + 20, keys=False)
    display.start()
    for event in restarts_and_tie():
        display(event)
        display.tick()
    display.close()
    text = out.getvalue()
    assert "final answer" in text and "from agent1 (a1)" in text
    assert "**Canberra**" not in text.split("final answer")[-1]  # rendered, not raw Markdown
    assert "run run-tie-1 completed" in text


def test_frames_are_throttled():
    display = TerminalDisplay(io.StringIO(), clock=lambda: T0 + 5, keys=False, fps=8)
    display.start()
    for event in restarts_and_tie():
        display(event)
        display.tick()  # many events in a burst: at most one frame per 1/8 s
    assert display.frames <= 2
    display.close()


def test_terminal_display_draws_columns_and_final_answer():
    out = io.StringIO()
    display = TerminalDisplay(out, clock=lambda: T0 + 5, keys=False)
    display.start()
    for event in restarts_and_tie():
        display(event)
    display.close()
    text = out.getvalue()
    assert "agent1 a1" in text and " | " in text
    assert "=== final answer from agent1 ===" in text


def test_final_only_display_prints_just_the_answer():
    out = io.StringIO()
    display = FinalOnlyDisplay(out)
    for event in restarts_and_tie():
        display(event)
    assert out.getvalue() == "**Canberra** is the capital.\n"


def test_every_display_handles_every_event_kind():
    kinds = {e.kind for e in restarts_and_tie() + failed_agent_events()}
    denied = ev.ToolDenied(run_id="r", agent="a1", label="agent1", turn_id="t", tool="mcp__fs__w",
                           path="/etc", resolved="/etc", rule="outside_roots",
                           phase="coordinate")  # fmt: skip
    for kind in ("simple", "terminal", "rich_terminal", "final"):
        display = make_display(kind, io.StringIO(), **({"keys": False} if kind != "final" else {}))
        display.start()
        for event in [*restarts_and_tie(), *failed_agent_events(), denied]:
            display(event)
        display.close()
    assert len(kinds) >= 15


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("flag", "no_display", "configured", "tty", "expected"),
    [
        (None, False, None, True, "rich_terminal"),
        (None, False, None, False, "simple"),
        (None, True, None, True, "final"),
        ("terminal", True, None, False, "terminal"),
        (None, False, "terminal", True, "terminal"),
        (None, False, "rich_terminal", False, "simple"),
    ],
)
def test_display_choice(flag, no_display, configured, tty, expected):
    stream = _Tty() if tty else io.StringIO()
    assert choose_display_type(flag, no_display, configured, stream) == expected


def test_runlog_writes_the_coordination_table(tmp_path):
    from massgen_cli.runlog import RunLog
    from massgen_proto.summary import summarize

    log = RunLog(tmp_path / "run")
    events = restarts_and_tie()
    for event in events:
        log.write(event)
    log.close(summarize("run-tie-1", events))
    table = (tmp_path / "run" / "coordination_table.txt").read_text()
    assert table == coordination_table(events)
    lines = (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["kind"] == "run_finished"

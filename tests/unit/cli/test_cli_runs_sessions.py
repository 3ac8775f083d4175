"""``massgen runs``, sessions, examples and argument routing, on folders written by RunLog."""

from __future__ import annotations

import io

import pytest
from massgen_cli import main as cli
from massgen_cli import runs
from massgen_cli.bundled import examples, resolve_config_path
from massgen_cli.commands import ask
from massgen_cli.display import SimpleDisplay
from massgen_cli.runlog import RunLog
from massgen_cli.session import Session
from massgen_proto.config import load_config
from massgen_proto.summary import summarize

from tests.support.fakes.run_events import failed_agent_events, restarts_and_tie


def _record(root, name, events):
    log = RunLog(root / name)
    for event in events:
        log.write(event)
    log.close(summarize(events[0].run_id, events))
    return root / name


@pytest.fixture
def log_root(tmp_path):
    root = tmp_path / "logs"
    _record(root, "20240101_120000_run-tie-1", restarts_and_tie())
    _record(root, "20240102_120000_run-failed-2", failed_agent_events())
    return root


def test_runs_list_shows_every_run(log_root, capsys):
    assert cli.main(["runs", "list", "--log-dir", str(log_root)]) == 0
    out = capsys.readouterr().out
    assert "run-tie-1" in out and "completed" in out and "a1" in out
    assert "run-failed-2" in out and "timed_out" in out
    assert "What is the capital of Australia?" in out


def test_runs_show_answers_votes_timing_tokens(log_root, capsys):
    assert cli.main(["runs", "show", "run-tie", "--log-dir", str(log_root), "--no-cost"]) == 0
    out = capsys.readouterr().out
    assert "run run-tie-1 — completed" in out
    assert "agent2.1" in out and "agent3.1" in out
    assert "agent1 → agent2: cites why" in out
    assert "tally: agent1 1, agent2 1, agent3 1 → winner agent1" in out
    assert "timing: total 13.0s" in out
    assert "tokens 40 in / 12 out" in out
    assert out.rstrip().endswith("**Canberra** is the capital.")


def test_runs_show_table_is_the_saved_table(log_root, capsys):
    assert cli.main(["runs", "show", "last", "--table", "--log-dir", str(log_root)]) == 0
    out = capsys.readouterr().out
    saved = (log_root / "20240102_120000_run-failed-2" / "coordination_table.txt").read_text()
    assert out == saved


def test_runs_show_unknown_run_lists_recent(log_root, capsys):
    assert cli.main(["runs", "show", "nope", "--log-dir", str(log_root)]) == 2
    assert "recent: run-tie-1, run-failed-2" in capsys.readouterr().err


def test_cost_estimate_uses_litellm_prices_when_known():
    costs = runs.estimate_cost(
        {"a1": "openai/gpt-4o-mini", "a2": "chatcompletion/m2"},
        {"a1": {"prompt_tokens": 1000, "completion_tokens": 1000}, "a2": {"prompt_tokens": 5}},
    )
    assert costs["a1"] is not None and costs["a1"] > 0
    assert costs["a2"] is None


async def test_replay_feeds_every_event_to_the_display():
    out = io.StringIO()
    clock = runs.ReplayClock(0)
    display = SimpleDisplay(out, clock=clock)
    await runs.replay(restarts_and_tie(), display, clock, speed=0)
    text = out.getvalue()
    assert "=== final answer from agent1 (a1) ===" in text
    assert text.rstrip().endswith("run run-tie-1 completed")


def test_replay_command_renders_a_recorded_run(log_root, capsys):
    args = ["runs", "replay", "run-tie-1", "--speed", "0", "--log-dir", str(log_root)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "[agent1 a1] ✓ answer agent1.1 accepted" in out
    assert "consensus: winner agent1" in out


def test_session_history_record_clear_and_resume(tmp_path):
    from massgen_cli.session import TurnRecord

    session = Session.create(tmp_path, {"config": "team.yaml"})
    log = tmp_path / "log1"
    log.mkdir()
    session.record(TurnRecord(1, "Capital of France?", "Paris.", "completed", "a1", "r1",
                              str(log), 1.5))  # fmt: skip
    session.record(TurnRecord(2, "And of Italy?", "Rome.", "completed", "a2", "r2", None, 1.0))
    assert [(m.role, m.content) for m in session.history()] == [
        ("user", "Capital of France?"), ("assistant", "Paris."),
        ("user", "And of Italy?"), ("assistant", "Rome."),
    ]  # fmt: skip
    assert (session.directory / "turn_1" / "logs").resolve() == log.resolve()
    session.clear()
    assert session.history() == []
    again = Session.open(tmp_path, session.id[:12])
    assert again.next_number() == 3 and again.history() == []
    summary = (session.directory / "SESSION_SUMMARY.md").read_text()
    assert "## Turn 2" in summary and "Rome." in summary and "history cleared" in summary


def test_bundled_examples_load_and_resolve_by_name():
    names = examples()
    assert {"local_three_agents", "openai_single", "mcp_filesystem"} <= set(names)
    for _name, (path, description) in names.items():
        load_config(path)
        assert description
    assert resolve_config_path("openai_single").endswith("openai_single.yaml")
    assert resolve_config_path("no-such") == "no-such"


def test_list_examples(capsys):
    assert cli.main(["--list-examples"]) == 0
    assert "mcp_filesystem" in capsys.readouterr().out


def test_subcommand_names_only_route_as_first_exact_argument(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "_subcommand", lambda argv: seen.append(argv) or 0)
    monkeypatch.setattr(ask, "_single", lambda *a: seen.append(("single", a[2])) or _done())
    monkeypatch.setattr(ask, "_run", lambda coro: coro)
    cli.main(["status"])
    cli.main(["--", "up"])
    cli.main(["--model", "gpt-4o-mini", "runs"])
    cli.main(["Runs are fun?"])
    assert seen[0] == ["status"]
    assert seen[1:] == [("single", "up"), ("single", "runs"), ("single", "Runs are fun?")]


def _done() -> int:
    return 0


def test_a_config_with_logging_disabled_writes_no_log_folder(tmp_path, monkeypatch):
    from massgen_cli.main import _parser

    monkeypatch.setenv("MASSGEN_RUNTIME_DIR", str(tmp_path / "runtime"))  # remembered configs

    path = tmp_path / "team.yaml"
    path.write_text(
        "agent: {id: a, backend: {type: chatcompletion, model: m, base_url: 'http://x/v1'}}\n"
        "ui: {logging_enabled: false}\n"
    )
    args = _parser().parse_args(["--config", str(path), "Q?"])
    assert not args.no_logs
    team = ask._team(args)
    assert args.no_logs and team.config["ui"]["logging_enabled"] is False

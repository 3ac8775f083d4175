"""The ``massgen`` command end to end: a real subprocess, its private stack, the fake model.

The fake model runs in this test process on 127.0.0.1; the command starts its own
nats-server, orchestrator and worker process. Fake models get *behaviours* (answers
from the conversation), since how many calls a run makes depends on timing.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from e2e_support import kill_tree, read_events, team_config, wait_for
from massgen_proto.events import RunEventAdapter

from tests.support.fakes.agents import study_agent
from tests.support.fakes.openai_server import FakeOpenAIServer, error, hang

pytestmark = pytest.mark.timeout(240)

A1 = "Canberra is the capital of Australia."
A2 = "The capital of Australia is Canberra, chosen as a compromise between Sydney and Melbourne."
A3 = "Australia's capital city is Canberra, in the Australian Capital Territory."
QUESTION = "What is the capital of Australia?"
IDS = ["alpha", "beta", "gamma"]


def three_agents(
    fake: FakeOpenAIServer, presentation: str = "Canberra (final).", **options
) -> None:
    """m1..m3 answer A1..A3, all vote for agent2, and agent2 presents ``presentation``."""
    for model, mine in (("m1", A1), ("m2", A2), ("m3", A3)):
        fake.behave(model, study_agent(mine, "agent2", presentation=presentation, **options))


# -- a whole run ---------------------------------------------------------------------------


def test_three_agent_run_prints_one_json_result_and_writes_the_log_folder(cli, fake_model):
    three_agents(fake_model)
    path = cli.write_config(team_config(fake_model.base_url, ["m1", "m2", "m3"], IDS))

    result = cli.run("--config", path.name, "--output", "json", QUESTION)

    assert result.code == 0, result.stderr
    out = result.json()  # the whole of stdout is one JSON object
    assert out["status"] == "completed"
    assert out["final_answer"] == "Canberra (final)."
    assert out["winner"] == "beta"
    assert sorted(a["content"] for a in out["answers"]) == sorted([A1, A2, A3])
    assert {a["agent"]: a["label"] for a in out["answers"]} == {
        "alpha": "agent1",
        "beta": "agent2",
        "gamma": "agent3",
    }
    assert all(set(a) >= {"agent", "label", "version", "content"} for a in out["answers"])
    assert {(v["voter"], v["target"]) for v in out["votes"]} == {
        ("alpha", "beta"),
        ("beta", "beta"),
        ("gamma", "beta"),
    }
    assert all(v["reason"] for v in out["votes"])
    assert set(out["agents"]) == set(IDS) and out["agents"]["beta"] == "winner"
    assert out["run_id"]

    log_dir = Path(out["log_dir"])
    assert log_dir.parent == cli.cwd / ".massgen" / "logs"
    assert log_dir.name.endswith(out["run_id"])
    lines = (log_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [RunEventAdapter.validate_json(line) for line in lines]  # every line is an event
    assert events[0].kind == "run_created" and events[-1].kind == "run_finished"
    assert {e.run_id for e in events} == {out["run_id"]}
    for agent_id in IDS:
        assert (log_dir / f"agent_{agent_id}.txt").read_text(encoding="utf-8").strip()
    assert (log_dir / "final_answer.md").read_text(encoding="utf-8").strip() == "Canberra (final)."
    status = json.loads((log_dir / "status.json").read_text(encoding="utf-8"))
    assert status["status"] == "completed" and status["run_id"] == out["run_id"]
    assert status["final_answer"] == out["final_answer"]


def test_no_logs_writes_no_folder_and_log_dir_chooses_the_folder(cli, fake_model):
    three_agents(fake_model, presentation="done")
    path = cli.write_config(team_config(fake_model.base_url, ["m1", "m2", "m3"], IDS))

    quiet = cli.run("--config", path.name, "--no-logs", "--output", "json", QUESTION)
    assert quiet.code == 0, quiet.stderr
    assert quiet.json()["log_dir"] is None
    assert not (cli.cwd / ".massgen").exists()

    root = cli.cwd / "elsewhere" / "logs"
    placed = cli.run("--config", path.name, "--log-dir", str(root), "--output", "json", QUESTION)
    assert placed.code == 0, placed.stderr
    assert not (cli.cwd / ".massgen").exists()
    [run_dir] = cli.log_dirs(root)
    assert str(run_dir) == placed.json()["log_dir"]
    assert {"events.jsonl", "final_answer.md", "status.json"} <= {p.name for p in run_dir.iterdir()}


def test_quick_mode_runs_one_agent(cli, fake_model):
    fake_model.behave("m1", study_agent(A1, "agent1", presentation="quick final"))

    result = cli.run(
        "--backend", "chatcompletion", "--base-url", fake_model.base_url, "--model", "m1",
        "--output", "json", "--no-logs", QUESTION,
    )  # fmt: skip

    assert result.code == 0, result.stderr
    out = result.json()
    assert (out["status"], out["winner"], out["final_answer"]) == ("completed", "m1", "quick final")
    assert [a["content"] for a in out["answers"]] == [A1]


# -- configuration errors (exit 2, before any service starts) -----------------------------

GOOD_BACKEND = "{type: chatcompletion, model: m1, base_url: 'http://127.0.0.1:9/v1'}"

CONFIG_ERRORS = {
    "unknown backend type": (
        "agents:\n  - id: a\n    backend: {type: nosuch, model: m1}\n",
        ["agents[0].backend.type", "nosuch"],
    ),
    "agent and agents": (
        f"agent:\n  id: x\n  backend: {GOOD_BACKEND}\n"
        f"agents:\n  - id: a\n    backend: {GOOD_BACKEND}\n",
        ["'agent'", "'agents'"],
    ),
    "duplicate ids": (
        f"agents:\n  - id: a\n    backend: {GOOD_BACKEND}\n"
        f"  - id: a\n    backend: {GOOD_BACKEND}\n",
        ["agents", "duplicate", "a"],
    ),
    "wrong type": (
        "agents:\n  - id: a\n    backend: {type: chatcompletion, model: m1, "
        "base_url: 'http://127.0.0.1:9/v1', temperature: hot}\n",
        ["agents[0].backend.temperature"],
    ),
    "malformed yaml": (
        f"agents:\n  - id: a\n\tbackend: {GOOD_BACKEND}\n",
        ["not valid YAML", "line 3"],
    ),
}


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_config_error_exits_2_naming_the_file_and_the_key(cli, case):
    text, expected = CONFIG_ERRORS[case]
    path = cli.write_config(text, name="broken-team.yaml")

    result = cli.run("--config", path.name, "--output", "json", QUESTION, timeout=60)

    assert result.code == 2, result.stderr
    assert result.stdout == ""
    assert "broken-team.yaml" in result.stderr
    for fragment in expected:
        assert fragment in result.stderr
    assert not (cli.cwd / ".massgen").exists()


def test_missing_config_file_exits_2(cli):
    result = cli.run("--config", "no-such-team.yaml", QUESTION, timeout=60)
    assert result.code == 2
    assert "no-such-team.yaml" in result.stderr and "cannot read" in result.stderr


def test_missing_api_key_exits_2_naming_the_variable(cli):
    path = cli.write_config("agents:\n  - id: a\n    backend: {type: openai, model: gpt-4o-mini}\n")
    env = {k: v for k, v in cli.env.items() if k != "OPENAI_API_KEY"}

    result = cli.run("--config", path.name, QUESTION, env=env, timeout=60)

    assert result.code == 2
    assert "OPENAI_API_KEY" in result.stderr
    assert not (cli.cwd / ".massgen").exists()


# -- runs that end badly (exit 3) -----------------------------------------------------------


def test_every_agent_failing_exits_3_with_status_failed(cli, fake_model):
    for model in ("m1", "m2", "m3"):
        fake_model.behave(model, lambda request: error(500, "upstream exploded"))
    config = team_config(
        fake_model.base_url, ["m1", "m2", "m3"], IDS, orchestrator={"max_agent_failures": 1}
    )
    path = cli.write_config(config)

    result = cli.run("--config", path.name, "--output", "json", QUESTION)

    assert result.code == 3, result.stderr
    out = result.json()
    assert out["status"] == "failed"
    assert out["final_answer"] is None
    assert out["agents"] == {agent_id: "failed" for agent_id in IDS}
    assert "upstream exploded" in out["message"]


def test_deadline_without_answers_exits_3_with_status_timed_out(cli, fake_model):
    for model in ("m1", "m2"):
        fake_model.behave(model, lambda request: hang(30.0))
    config = team_config(
        fake_model.base_url,
        ["m1", "m2"],
        ["alpha", "beta"],
        timeout_settings={"orchestrator_timeout_seconds": 1},
    )
    path = cli.write_config(config)

    result = cli.run("--config", path.name, "--output", "json", QUESTION)

    assert result.code == 3, result.stderr
    out = result.json()
    assert out["status"] == "timed_out"
    assert out["final_answer"] is None and out["answers"] == []
    [run_dir] = cli.log_dirs()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "timed_out"


# -- Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_cancels_the_run_keeps_answers_and_exits_130(cli, fake_model):
    slow = {"tokens": 400, "token_delay": 0.05}  # 20 s per response: the run is mid-way
    fake_model.behave("m1", study_agent(A1, "agent1"))  # answers at once, then votes
    fake_model.behave("m2", study_agent(A2, "agent1", **slow))
    fake_model.behave("m3", study_agent(A3, "agent1", **slow))
    path = cli.write_config(team_config(fake_model.base_url, ["m1", "m2", "m3"], IDS))

    proc = cli.start("--config", path.name, "--output", "json", QUESTION)
    try:
        run_dir = wait_for(lambda: next(iter(cli.log_dirs()), None), 60, "the log folder")

        def answered() -> bool:
            events = read_events(run_dir / "events.jsonl")
            return any(e["kind"] == "answer_accepted" for e in events)

        wait_for(answered, 90, "the first accepted answer")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill_tree(proc)
            proc.communicate()

    assert proc.returncode == 130, stderr
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    assert status["status"] == "cancelled"
    assert [a["content"] for a in status["answers"]] == [A1]
    assert json.loads(stdout)["status"] == "cancelled"
    events = read_events(run_dir / "events.jsonl")
    assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "cancelled"


def test_config_warnings_reach_stderr_the_result_and_the_log_folder(cli, fake_model):
    fake_model.behave("w1", study_agent(A1, "agent1", presentation="Warned final."))
    config = team_config(fake_model.base_url, ["w1"], ["solo"])
    config["agents"][0]["backend"]["permission_mode"] = "default"  # accepted, not applied
    path = cli.write_config(config)

    result = cli.run("--config", path.name, "--output", "json", QUESTION)

    assert result.code == 0, result.stderr
    warning = "agents[0].backend.permission_mode: ignored"
    assert f"massgen: warning: {warning}" in result.stderr
    out = result.json()
    assert len(out["warnings"]) == 1 and out["warnings"][0].startswith(warning)
    (folder,) = cli.log_dirs()
    assert (folder / "warnings.txt").read_text().startswith(warning)
    assert json.loads((folder / "status.json").read_text())["warnings"] == out["warnings"]


# -- answers' code checked against the task's examples ------------------------------------

CODE_TASK = '''Complete this function.

```python
def add(a: int, b: int) -> int:
    """Return the sum of a and b.

    >>> add(1, 2)
    3
    """
```'''
GOOD = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
BAD = "```python\ndef add(a: int, b: int) -> int:\n    return a - b\n```"


def _coder(code: str):
    """Answers ``code`` until it is among the current answers, then votes agent1; a
    presentation (offered no tools) repeats it."""
    from tests.support.fakes.openai_server import answer, text, vote

    def behave(request):
        names = {t["function"]["name"] for t in request.get("tools") or ()}
        if not names:
            return text(f"Final:\n{code}")
        if "vote" in names and code in str(request["messages"]):
            return vote("agent1", "agent1 is right")
        return answer(code)

    return behave


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap is not installed")
def test_a_code_task_has_its_answers_checked_by_the_commands_own_gateway(cli, fake_model):
    """A team without tools: the command starts its gateway for the checks because the
    question gives examples; the answer passing them wins over the votes."""
    fake_model.behave("m1", _coder(BAD))
    fake_model.behave("m2", _coder(GOOD))
    path = cli.write_config(team_config(fake_model.base_url, ["m1", "m2"], ["bad", "good"]))

    result = cli.run("--config", path.name, "--output", "json", CODE_TASK)

    assert result.code == 0, result.stderr
    out = result.json()
    assert out["winner"] == "good" and "a + b" in out["final_answer"], out
    events = read_events(Path(out["log_dir"]) / "events.jsonl")
    checks = {e["label"]: e["check"] for e in events if e["kind"] == "answer_accepted"}
    assert {label: (c["passed"], c["total"]) for label, c in checks.items()} == {
        "agent1": (0, 1), "agent2": (1, 1),
    }  # fmt: skip

"""The ``massgen`` command as a person uses it: in a terminal (tmux), live.

Each test runs the real command in a private tmux server against the scripted fake
model served from the test process, reads the screen with ``capture-pane`` and
types with ``send-keys``. Waits poll the screen with generous limits; nothing
asserts on timing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from e2e_support import Cli, Tmux, kill_tree, team_config, wait_for

from tests.support.fakes.agents import study_agent, user_text
from tests.support.fakes.openai_server import text

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]

ANSWERS = {
    "m1": "Canberra is the capital of Australia.",
    "m2": "The capital of Australia is Canberra, a planned city.",
    "m3": "Australia's capital city is Canberra, in the ACT.",
}


@pytest.fixture
def tmux(cli):
    handle = Tmux(cli)
    try:
        yield handle
    finally:
        handle.stop()


def _team(cli: Cli, fake_model, models: list[str], **step_options) -> Path:
    for model in models:
        fake_model.behave(
            model,
            study_agent(ANSWERS[model], "agent2" if len(models) > 1 else "agent1", presentation=f"**Final** from {model}: Canberra.",
                        **step_options),
        )  # fmt: skip
    return cli.write_config(team_config(fake_model.base_url, models, ids=["ann", "bob", "cyd"][: len(models)]))  # fmt: skip


def test_live_display_shows_panels_statuses_table_and_final_answer(cli, fake_model, tmux):
    config = _team(cli, fake_model, ["m1", "m2", "m3"], tokens=60, token_delay=0.04)
    tmux.start("--config", config.name, "What is the capital of Australia?")

    streaming = tmux.wait(
        "agent1 ann", "agent2 bob", "agent3 cyd", "working t1", "w1 w2", "r: coordination table"
    )
    assert "orchestrator answers:" in streaming

    tmux.keys("r")
    tmux.wait("coordination table", "started turn 1")
    tmux.keys("r")

    final = tmux.wait("EXITED 0", timeout=120)
    assert "final answer from agent2 (bob)" in final
    assert "Final from m2: Canberra." in final  # Markdown rendered: no ** left
    assert "**Final**" not in final.split("final answer from")[-1]
    assert "voted for agent2" in final
    assert "winner: final answer" in final
    assert "completed" in final
    logs = cli.log_dirs()
    assert len(logs) == 1
    table = (logs[0] / "coordination_table.txt").read_text()
    assert "answer agent1.1" in table and "consensus: agent2 wins" in table


LONG_ANSWER = " ".join(f"Canberra{i}" for i in range(60)) + " THE-END"
LINES_ANSWER = "\n".join(f"Line {i}: Canberra is the capital." for i in range(16)) + "\nTHE-END"


def _streaming_team(cli: Cli, fake_model, answer: str) -> Path:
    """Two agents whose models put their answers inside the new_answer call (as most do);
    agent2 writes ``answer`` slowly, both vote for it (agent1, in a turn before agent2's
    answer is in, for its own: a vote for an agent with no answer is refused, and on a
    loaded machine the refusals can use up agent1's retries)."""
    answers = {"m1": "Canberra is the capital of Australia.", "m2": answer}

    def agent2_once_shown(request) -> str:
        return "agent2" if "<agent2>" in user_text(request) else "agent1"

    for model, mine in answers.items():
        fake_model.behave(model, study_agent(mine, agent2_once_shown, reason=f"{model} likes it",
                                             presentation="**Final**: Canberra.",
                                             token_delay=0.03))  # fmt: skip
    return cli.write_config(team_config(fake_model.base_url, ["m1", "m2"], ids=["ann", "bob"]))


def test_answer_text_and_votes_stream_into_the_panels(cli, fake_model, tmux):
    config = _streaming_team(cli, fake_model, LONG_ANSWER)
    tmux.start("--config", config.name, "What is the capital of Australia?")

    def answer_half_written() -> str | None:
        screen = tmux.screen()
        ready = "✎ answer:" in screen and "Canberra5" in screen and "THE-END" not in screen
        return screen if ready else None

    partial = wait_for(answer_half_written, 90, "agent2's answer appearing in its panel")
    assert "final answer from" not in partial and "writing answer" in partial
    final = tmux.wait("EXITED 0", timeout=120)
    assert "☑ voted for agent2: m1 likes it" in final  # the vote line in agent1's panel
    assert "✓ answer agent2.1 accepted" in final
    assert final.index("THE-END") < final.index("final answer from agent2")


def test_simple_mode_in_a_file_and_replay_show_answers_as_they_are_written(cli, fake_model):
    config = _streaming_team(cli, fake_model, LINES_ANSWER)
    output = cli.cwd / "out.txt"
    with output.open("w") as sink:
        proc = subprocess.Popen(
            cli.command("--config", config.name, "--display", "simple", "Capital?"),
            cwd=cli.cwd, env=cli.env, stdin=subprocess.DEVNULL, stdout=sink,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            partial = wait_for(
                lambda: (text := output.read_text())
                and "[agent2 bob] Line 3: Canberra" in text and "THE-END" not in text and text,
                90, "agent2's answer lines in the file while it is written",
            )  # fmt: skip
            _, stderr = proc.communicate(timeout=120)
        except BaseException:
            kill_tree(proc)
            raise
    assert proc.returncode == 0, stderr
    assert "=== final answer" not in partial
    assert "[agent2 bob] ✎ providing answer:" in partial
    assert "waiting for the model" not in output.read_text()
    text = output.read_text()
    for expected in ("[agent2 bob] THE-END", "[agent2 bob] ✓ answer agent2.1 accepted",
                     "[agent1 ann] ☑ voting for agent2: m1 likes it",
                     "[agent1 ann] ✓ voted for agent2"):  # fmt: skip
        assert expected in text, expected
    assert text.index("[agent2 bob] THE-END") < text.index("=== final answer from agent2")

    replayed = cli.run("runs", "replay", "last", "--display", "simple", "--speed", "0")
    assert replayed.code == 0, replayed.stderr
    for expected in ("[agent2 bob] ✎ providing answer:", "[agent2 bob] Line 15: Canberra",
                     "[agent1 ann] ☑ voting for agent2: m1 likes it"):  # fmt: skip
        assert expected in replayed.stdout, expected


def test_interactive_two_turns_clear_and_quit(cli, fake_model, tmux):
    config = _team(cli, fake_model, ["m1", "m2"])
    tmux.start("--config", config.name)
    tmux.wait("interactive session", "[turn 1] >")

    tmux.keys("What is the capital of Australia?", "Enter")
    tmux.wait("final answer from agent2", "[turn 2] >")
    first_turn_requests = len(fake_model.requests)

    tmux.keys("And its population?", "Enter")
    tmux.wait("[turn 3] >")
    second = fake_model.requests[first_turn_requests:]
    history = [m for m in second[0].messages if m.get("role") in ("user", "assistant")]
    text = json.dumps(history)
    assert "What is the capital of Australia?" in text
    assert "**Final** from m2: Canberra." in text

    tmux.keys("/clear", "Enter")
    tmux.wait("conversation cleared")
    cleared_at = len(fake_model.requests)
    tmux.keys("Third question?", "Enter")
    tmux.wait("[turn 4] >")
    third = json.dumps(fake_model.requests[cleared_at].messages)
    assert "What is the capital of Australia?" not in third

    tmux.keys("/quit", "Enter")
    screen = tmux.wait("EXITED 0", "session saved")
    session_id = screen.split("massgen --session ")[1].split()[0]
    folder = cli.cwd / ".massgen" / "sessions" / session_id
    assert sorted(p.name for p in folder.glob("turn_*")) == ["turn_1", "turn_2", "turn_3"]
    assert (folder / "turn_1" / "answer.md").read_text().strip() == "**Final** from m2: Canberra."
    assert (folder / "turn_2" / "logs" / "events.jsonl").exists()
    summary = (folder / "SESSION_SUMMARY.md").read_text()
    assert "And its population?" in summary and "history cleared" in summary

    # Resume the session for one more turn: it sees the turns after the /clear.
    resumed_at = len(fake_model.requests)
    result = cli.run("--session", session_id, "--display", "simple", "Fourth?", timeout=120)
    assert result.code == 0, result.stderr
    fourth = json.dumps(fake_model.requests[resumed_at].messages)
    assert "Third question?" in fourth and "And its population?" not in fourth
    assert (folder / "turn_4" / "question.md").read_text().strip() == "Fourth?"


def test_ctrl_c_cancels_a_turn_without_leaving_the_session(cli, fake_model, tmux):
    fake_model.script("m1", [text("slow " * 300, token_delay=0.05)])
    config = _team(cli, fake_model, ["m1"])
    tmux.start("--config", config.name, "--display", "simple")
    tmux.wait("[turn 1] >")
    tmux.keys("A slow question", "Enter")
    tmux.wait("… turn 1")
    tmux.keys("C-c")
    tmux.wait("cancelled by user", "[turn 2] >")
    # The stack survived the Ctrl-C: the next turn runs on it.
    tmux.keys("Now a quick one", "Enter")
    tmux.wait("final answer from agent1", "[turn 3] >", timeout=120)
    assert "run " in tmux.screen() and "completed" in tmux.screen()
    tmux.keys("C-d")
    tmux.wait("EXITED 0")


def test_warm_stack_up_status_question_down(cli, fake_model, tmp_path):
    env = dict(cli.env, MASSGEN_RUNTIME_DIR=str(tmp_path / "runtime"))
    config = _team(cli, fake_model, ["m1", "m2"])

    def run(*args: str, timeout: float = 120):
        proc = subprocess.run(cli.command(*args), cwd=cli.cwd, env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
        return proc

    up = run("up", "--providers", "chatcompletion")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "warm stack up at nats://127.0.0.1:" in up.stdout
        state = json.loads((tmp_path / "runtime" / "stack.json").read_text())
        assert set(state["pids"]) >= {"stackd", "nats-server", "worker"}

        status = run("status")
        assert status.returncode == 0 and "warm stack: up" in status.stdout
        assert run("up").returncode == 0  # already running: says so, starts nothing

        answer = run("--config", config.name, "--output", "json", "capital?")
        assert answer.returncode == 0, answer.stderr
        assert "using the warm stack" in answer.stderr
        assert (
            json.loads(answer.stdout)["winner"] == "agent-m2"
            or json.loads(answer.stdout)["status"] == "completed"
        )
    finally:
        down = run("down")
    assert down.returncode == 0 and "stopped" in down.stdout
    from massgen_cli.warm import pid_alive

    assert not any(pid_alive(pid) for pid in state["pids"].values())
    assert run("status").returncode == 1

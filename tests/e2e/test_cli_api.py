"""``massgen --api URL`` against a running HTTP API, and ``massgen serve api``.

The API tests start the API + orchestrator + worker in this process (the helpers of
``tests/integration/api``) and run ``massgen --api`` as a real subprocess; the serve
test starts ``massgen serve api`` as a subprocess with its own private stack.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading

import httpx
import pytest
import yaml
from e2e_support import kill_tree, read_events, team_config, wait_for

from tests.support.api_stack import start_api_stack
from tests.support.fakes.agents import study_agent
from tests.support.fakes.openai_server import hang

pytestmark = pytest.mark.timeout(240)

QUESTION = "What is the capital of Australia?"
A1 = "Canberra is the capital of Australia."
A2 = "The capital of Australia is Canberra, chosen as a compromise."


def two_agents(fake, presentation: str = "Canberra (final).") -> None:
    fake.behave("m1", study_agent(A1, "agent2", presentation=presentation))
    fake.behave("m2", study_agent(A2, "agent2", presentation=presentation))


@pytest.fixture
def api(tmp_path, nats_url, fake_model):
    stack, stop = start_api_stack(tmp_path, nats_url, fake_model)
    try:
        yield stack
    finally:
        stop()


def test_api_run_prints_the_json_result_and_writes_the_log_folder(cli, api, fake_model):
    two_agents(fake_model)
    path = cli.write_config(team_config(fake_model.base_url, ["m1", "m2"], ["alpha", "beta"]))
    env = dict(cli.env, MASSGEN_API_TOKEN="alice-token")

    result = cli.run("--api", api.url, "--config", path.name, "--output", "json", QUESTION, env=env)

    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "completed"
    assert out["final_answer"] == "Canberra (final)."
    assert out["winner"] == "beta"
    assert sorted(a["content"] for a in out["answers"]) == sorted([A1, A2])
    # The log folder is named after the server's run id and holds every event.
    (folder,) = cli.log_dirs()
    assert folder.name.endswith(out["run_id"])
    assert out["log_dir"] == str(folder)
    events = read_events(folder / "events.jsonl")
    assert events[0]["kind"] == "run_created" and events[-1]["kind"] == "run_finished"
    assert (folder / "final_answer.md").read_text().strip() == "Canberra (final)."
    # The server knows the same run as finished.
    with api.client() as http:
        assert http.get(f"/v1/runs/{out['run_id']}").json()["status"] == "completed"


def test_api_run_with_a_server_team_and_the_token_option(cli, api, fake_model):
    fake_model.behave("s1", study_agent("Solo answer.", "agent1", presentation="Solo final."))

    result = cli.run(
        "--api", api.url, "--token", "bob-token", "--team", "solo", "--no-logs",
        "--output", "json", QUESTION,
    )  # fmt: skip

    assert result.code == 0, result.stderr
    assert result.json()["final_answer"] == "Solo final."
    assert cli.log_dirs() == []


def test_api_errors_exit_2_with_the_api_message(cli, api, fake_model):
    path = cli.write_config(team_config(fake_model.base_url, ["m1"]))

    bad_token = cli.run("--api", api.url, "--token", "wrong", "--config", path.name, QUESTION)
    no_team = cli.run("--api", api.url, "--token", "alice-token", "--team", "nope", QUESTION)
    missing_team = cli.run("--api", api.url, QUESTION)

    assert bad_token.code == 2, bad_token.stderr
    assert "401" in bad_token.stderr and "Unauthorized" in bad_token.stderr
    assert no_team.code == 2 and "404" in no_team.stderr and "nope" in no_team.stderr
    assert missing_team.code == 2 and "--team" in missing_team.stderr
    assert cli.log_dirs() == []  # nothing was run


def test_api_unreachable_exits_3(cli, fake_model):
    path = cli.write_config(team_config(fake_model.base_url, ["m1"]))
    result = cli.run("--api", "http://127.0.0.1:9", "--config", path.name, QUESTION)
    assert result.code == 3
    assert "cannot reach the API" in result.stderr


def test_ctrl_c_cancels_the_remote_run(cli, api, fake_model):
    fake_model.behave("m1", lambda _request: hang(30.0))
    path = cli.write_config(team_config(fake_model.base_url, ["m1"]))
    env = dict(cli.env, MASSGEN_API_TOKEN="alice-token")
    proc = subprocess.Popen(
        cli.command("--api", api.url, "--config", path.name, "--output", "json", QUESTION),
        cwd=cli.cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        folder = wait_for(lambda: (cli.log_dirs() or [None])[0], 60, "the run's log folder")
        wait_for(
            lambda: any(e["kind"] == "turn_started" for e in read_events(folder / "events.jsonl")),
            60, "the first turn",
        )  # fmt: skip
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    except BaseException:
        kill_tree(proc)
        raise
    assert proc.returncode == 130, stderr
    out = json.loads(stdout)
    assert out["status"] == "cancelled"
    with api.client() as http:
        assert http.get(f"/v1/runs/{out['run_id']}").json()["status"] == "cancelled"


def test_serve_api_answers_runs_and_stops_on_sigterm(cli, fake_model, tmp_path):
    fake_model.behave("s1", study_agent("Solo answer.", "agent1", presentation="Served."))
    teams = tmp_path / "teams"
    teams.mkdir()
    (teams / "solo.yaml").write_text(
        yaml.safe_dump(team_config(fake_model.base_url, ["s1"], ["solo"])), encoding="utf-8"
    )
    proc = cli.start(
        "serve", "api", "--port", "0", "--providers", "chatcompletion",
        "--teams-dir", str(teams),
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        found = wait_for(
            lambda: next((m for x in lines if (m := re.search(r"at (http://\S+)", x))), None)
            or (proc.poll() is not None and "exited"),
            120, "the API URL on stdout",
        )  # fmt: skip
        assert found != "exited", proc.stderr.read()
        url = found.group(1)
        assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}

        result = cli.run("--api", url, "--team", "solo", "--output", "json", QUESTION)
        assert result.code == 0, result.stderr
        assert result.json()["final_answer"] == "Served."

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read()
    except BaseException:
        kill_tree(proc)
        raise
    reader.join(5)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_api_config_warnings_are_printed_and_kept(cli, api, fake_model):
    fake_model.behave("w1", study_agent(A1, "agent1", presentation="Warned final."))
    config = team_config(fake_model.base_url, ["w1"], ["solo"])
    config["agents"][0]["backend"]["permission_mode"] = "default"  # accepted, not applied
    path = cli.write_config(config)
    env = dict(cli.env, MASSGEN_API_TOKEN="alice-token")

    result = cli.run("--api", api.url, "--config", path.name, "--output", "json", QUESTION, env=env)

    assert result.code == 0, result.stderr
    warning = "agents[0].backend.permission_mode: ignored"
    assert result.stderr.count(f"massgen: warning: {warning}") == 1  # the API's list, once
    assert result.json()["warnings"][0].startswith(warning)
    (folder,) = cli.log_dirs()
    assert (folder / "warnings.txt").read_text().startswith(warning)

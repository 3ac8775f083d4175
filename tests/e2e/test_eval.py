"""``massgen eval`` end to end: a real subprocess, its private stack, the fake model.

Member ``good`` (model m1) answers every HumanEval problem with its canonical solution,
member ``bad`` (m2) with a stub; both vote for agent1, so good wins and presents. The
plain-chat baseline reaches the same fake models without tools.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from e2e_support import kill_tree, team_config, wait_for
from massgen_cli.evals.datasets import humaneval_path, load_humaneval

from tests.support.api_stack import start_api_stack
from tests.support.fakes.agents import offered_tools, user_text
from tests.support.fakes.openai_server import FakeOpenAIServer, Step, answer, text, vote

pytestmark = pytest.mark.timeout(240)

PROBLEMS = load_humaneval().problems
with gzip.open(humaneval_path(), "rt") as _handle:
    CANONICAL = {json.loads(line)["task_id"]: json.loads(line)["canonical_solution"]
                 for line in _handle}  # fmt: skip
IDS = ["good", "bad"]


def is_baseline(request: dict) -> bool:
    """A plain-chat baseline call: no tools, and not a presentation (which shows the
    team's answers). A member's first team turn asks the same question, with tools."""
    return not offered_tools(request) and "CURRENT ANSWERS" not in str(request.get("messages"))


def problem_of(request: dict) -> object:
    seen = user_text(request)
    return next(p for p in PROBLEMS if p.prompt in seen)


def solver(correct: bool, **options) -> object:
    """Answer the problem in the request (canonical solution or a stub), vote agent1."""

    def behave(request: dict) -> Step:
        problem = problem_of(request)
        body = CANONICAL[problem.id] if correct else "    return None\n"
        code = f"My solution:\n\n```python\n{problem.prompt}{body}```\n"
        tools = offered_tools(request)
        if not tools:  # presenting, or the plain-chat baseline
            return text(code, **options)
        if "new_answer" in tools and code not in user_text(request):
            return answer(code, **options)
        return vote("agent1", "it passes the examples", **options)

    return behave


def team(cli, fake: FakeOpenAIServer, **options) -> Path:
    fake.behave("m1", solver(True, **options))
    fake.behave("m2", solver(False, **options))
    return cli.write_config(team_config(fake.base_url, ["m1", "m2"], IDS))


def records(folder: Path) -> dict[str, dict]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def test_eval_scores_each_member_the_team_the_oracle_and_the_single_baseline(cli, fake_model):
    config = team(cli, fake_model)
    out = cli.cwd / "evals" / "he"

    result = cli.run(
        "eval", "humaneval", "--config", config.name, "--subset", "0:12:4",
        "--baseline", "single", "--out", str(out),
    )  # fmt: skip

    assert result.code == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    rates = {s["key"]: (s["passed"], s["total"]) for s in summary["systems"]}
    assert rates == {
        "final": (3, 3), "winner": (3, 3), "member:good": (3, 3), "member:bad": (0, 3),
        "single:good": (3, 3), "single:bad": (0, 3), "oracle": (3, 3),
    }  # fmt: skip
    assert summary["problem_ids"] == ["HumanEval/0", "HumanEval/4", "HumanEval/8"]
    assert summary["headline"]["final_minus_best_member"] == 0
    team_cost = summary["cost"]["team"]
    assert team_cost["mean_tokens"] > 0 and team_cost["mean_model_calls"] >= 4
    assert team_cost["mean_wall_seconds"] > 0
    assert summary["cost"]["single:good"]["mean_model_calls"] == 1
    assert summary["sandbox"].startswith("bwrap") or "WEAK" in summary["sandbox"]

    scored = records(out)
    first = scored["HumanEval/0"]
    assert first["status"] == "completed" and first["oracle"] is True
    assert first["members"]["good"]["passed"] and first["members"]["good"]["source"] == "answer"
    assert "AssertionError at test line" in first["members"]["bad"]["reason"]
    assert (first["winner"]["agent"], first["final"]["agent"]) == ("good", "good")
    assert first["baselines"]["single"]["bad"]["passed"] is False
    assert first["baselines"]["single"]["good"]["tokens"] > 0
    assert (out / first["log_dir"] / "events.jsonl").exists()
    # The plain-chat baseline: one call per member and problem, no tools, same system text
    # (these members have none). A member's first team turn is the same question with
    # new_answer offered; a presentation has no tools but shows the team's answers.
    plain = [r for r in fake_model.requests
             if is_baseline({"messages": r.messages, "tools": r.tools})]  # fmt: skip
    assert len(plain) == 2 * 3 and all(len(r.messages) == 1 for r in plain)
    assert all(r.messages[0]["role"] == "user" for r in plain)
    first_turns = [r for r in fake_model.requests
                   if r.tools and "CURRENT ANSWERS" not in str(r.messages)]  # fmt: skip
    assert {str(r.messages) for r in first_turns} == {str(r.messages) for r in plain}

    chart = (out / "chart.png").read_bytes()
    assert chart.startswith(b"\x89PNG") and len(chart) > 10_000
    assert "team: final answer" in result.stdout and "100.0%" in result.stdout

    shown = cli.run("eval", "show", str(out), "--json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["systems"] == summary["systems"]


def test_an_interrupted_eval_resumes_without_rerunning_scored_problems(cli, fake_model):
    # Slow enough (answers stream for about a second) to stop the eval between problems.
    config = team(cli, fake_model, token_delay=0.015)
    out = cli.cwd / "evals" / "resume"
    args = ("eval", "humaneval", "--config", config.name, "--subset", "0:4", "--out", str(out))

    proc = cli.start(*args)
    try:
        wait_for(lambda: (out / "results.jsonl").exists()
                 and len((out / "results.jsonl").read_text().splitlines()) >= 2,
                 150, "two scored problems")  # fmt: skip
    finally:
        kill_tree(proc)  # SIGKILL: no chance to tidy up
    done = set(records(out))
    asked_before = len(fake_model.requests)
    assert 2 <= len(done) < 4

    result = cli.run(*args)

    assert result.code == 0, result.stderr[-3000:]
    assert f"resuming: {len(done)} of 4 problem(s) already scored" in result.stdout
    assert set(records(out)) == {p.id for p in PROBLEMS[:4]}
    later = fake_model.requests[asked_before:]
    asked_again = {problem_of(r.body).id for r in later}
    assert not asked_again & done, "scored problems were run again"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == 4
    assert {s["key"]: s["passed"] for s in summary["systems"]}["member:good"] == 4


def test_a_jsonl_benchmark_of_text_and_code_items(cli, fake_model):
    items = cli.cwd / "items.jsonl"
    items.write_text("\n".join(json.dumps(item) for item in [
        {"id": "capital", "question": "What is the capital of Australia?", "answer": "Canberra"},
        {"id": "mult", "question": "What is 17 * 23?", "answer_regex": r"\b391\b"},
        {"id": "add", "question": "Write a Python function def add(a, b) returning the sum.",
         "test": "assert add(2, 3) == 5\nassert add(-1, 1) == 0"},
    ]) + "\n")  # fmt: skip
    replies = {
        "capital": ("The capital is Canberra.\nAnswer: Canberra", "Answer: Sydney"),
        "mult": ("17 * 23 = 391", "17 * 23 = 401"),
        "add": ("```python\ndef add(a, b):\n    return a + b\n```",
                "```python\ndef add(a, b):\n    return a - b\n```"),
    }  # fmt: skip

    def member(index: int) -> object:
        def behave(request: dict) -> Step:
            seen = user_text(request)
            key = next(k for k, q in (("capital", "Australia"), ("mult", "17 * 23"),
                                      ("add", "def add")) if q in seen)  # fmt: skip
            mine = replies[key][index]
            tools = offered_tools(request)
            if not tools:
                return text(mine)
            if "new_answer" in tools and mine not in seen:
                return answer(mine)
            return vote("agent2", "checked")

        return behave

    fake_model.behave("m1", member(1))  # wrong, but it is the one voted for: agent2 is m2
    fake_model.behave("m2", member(0))
    config = cli.write_config(team_config(fake_model.base_url, ["m1", "m2"], ["one", "two"]))
    out = cli.cwd / "evals" / "mine"

    result = cli.run("eval", str(items.name), "--config", config.name, "--out", str(out))

    assert result.code == 0, result.stderr[-3000:]
    scored = records(out)
    for key in ("capital", "mult", "add"):
        assert scored[key]["members"]["two"]["passed"], scored[key]["members"]["two"]
        assert not scored[key]["members"]["one"]["passed"], scored[key]["members"]["one"]
        assert scored[key]["final"]["passed"] and scored[key]["final"]["agent"] == "two"
    assert "Sydney" in scored["capital"]["members"]["one"]["reason"]


def test_a_results_folder_of_another_team_is_not_resumed(cli):
    out = cli.cwd / "evals" / "x"
    out.mkdir(parents=True)
    (out / "eval.json").write_text(json.dumps({"benchmark": "humaneval", "config": {"other": 1}}))
    config = cli.write_config(team_config("http://127.0.0.1:9/v1", ["m1"], ["solo"]))
    started = time.monotonic()

    result = cli.run("eval", "humaneval", "--config", config.name, "--limit", "1",
                     "--out", str(out))  # fmt: skip

    assert result.code == 2
    assert "holds an eval of another" in result.stderr and "--out" in result.stderr
    assert time.monotonic() - started < 30  # refused before any stack started
    assert not (out / "results.jsonl").exists()


def test_eval_over_the_api(cli, tmp_path, nats_url, fake_model):
    """``--api URL --token T``: the same scoring from the API's event stream."""
    stack, stop = start_api_stack(tmp_path, nats_url, fake_model)
    try:
        config = team(cli, fake_model)
        out = cli.cwd / "evals" / "api"
        result = cli.run(
            "eval", "humaneval", "--api", stack.url, "--token", "alice-token",
            "--config", config.name, "--subset", "0:2", "--out", str(out),
        )  # fmt: skip
        refused = cli.run("eval", "humaneval", "--api", stack.url, "--config", config.name,
                          "--baseline", "single", "--out", str(out))  # fmt: skip
    finally:
        stop()
    assert result.code == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    rates = {s["key"]: (s["passed"], s["total"]) for s in summary["systems"]}
    assert rates == {"final": (2, 2), "winner": (2, 2), "member:good": (2, 2),
                     "member:bad": (0, 2), "oracle": (2, 2)}  # fmt: skip
    assert refused.code == 2 and "not with --api" in refused.stderr


def test_sigterm_during_a_slow_baseline_stops_at_once_and_keeps_the_team_run(cli, fake_model):
    """A plain-chat baseline can take a minute on a local model: an interruption stops it
    at once (it is asked again on resume), and the team run already done is kept."""
    slow = {"tokens": 400, "token_delay": 0.25}  # a baseline reply of about 100 s

    def member(correct: bool) -> object:
        team_turn = solver(correct)

        def behave(request: dict) -> Step:
            if is_baseline(request):
                return text("```python\nx = 1\n```", **slow)
            return team_turn(request)

        return behave

    fake_model.behave("m1", member(True))
    fake_model.behave("m2", member(False))
    config = cli.write_config(team_config(fake_model.base_url, ["m1", "m2"], IDS))
    out = cli.cwd / "evals" / "term"
    args = ("eval", "humaneval", "--config", config.name, "--subset", "0:1",
            "--baseline", "single", "--out", str(out))  # fmt: skip

    proc = cli.start(*args)
    try:
        wait_for(lambda: any(is_baseline({"messages": r.messages, "tools": r.tools})
                             for r in fake_model.requests), 120, "the baseline call")  # fmt: skip
        time.sleep(0.5)
        asked = time.monotonic()
        proc.terminate()
        code = proc.wait(timeout=30)
        stopped_in = time.monotonic() - asked
    finally:
        kill_tree(proc)
    assert code == 130 and stopped_in < 10, (code, stopped_in)
    (kept,) = records(out).values()
    assert kept["members"]["good"]["passed"] and "single" not in kept["baselines"]

"""``massgen eval`` pieces without a stack: answer extraction, benchmarks, scoring, figures."""

from __future__ import annotations

import io
import json

import pytest
from massgen_cli.evals import report
from massgen_cli.evals.datasets import EvalError, load_benchmark, load_humaneval, select
from massgen_cli.evals.extract import (
    code_blocks,
    extract_code,
    humaneval_program,
    match_text,
    normalise,
)
from massgen_cli.evals.results import ResultsFile, differences
from massgen_cli.evals.scoring import fold_run
from massgen_proto import events as ev

# -- code extraction ------------------------------------------------------------------------

PROMPT = 'from typing import List\n\n\ndef add(xs: List[int]) -> int:\n    """Sum."""\n'


def test_fenced_block_defining_the_entry_point_wins_over_other_blocks():
    reply = (
        "First a helper:\n```python\ndef helper(x):\n    return x\n```\n"
        "Then the answer:\n```python\ndef add(xs):\n    return sum(helper(x) for x in xs)\n```\n"
        "Usage:\n```python\nprint(add([1, 2]))\n```\n"
    )
    code = extract_code(reply, "add")
    assert "def helper" in code and "def add" in code
    assert "print(" not in code


def test_unclosed_fence_runs_to_the_end_and_usage_is_dropped():
    reply = "```py\ndef add(xs):\n    return sum(xs)\n\nassert add([1]) == 2\nprint(add([3]))\n"
    code = extract_code(reply, "add")
    assert code == "def add(xs):\n    return sum(xs)\n"
    assert code_blocks("```\nx = 1\n")[0] == ("", "x = 1\n")


def test_main_guard_is_dropped_but_definitions_and_constants_stay():
    reply = (
        "```python\nLIMIT = 3\n\ndef add(xs):\n    return sum(xs[:LIMIT])\n\n"
        "if __name__ == '__main__':\n    print(add(input()))\n```"
    )
    code = extract_code(reply, "add")
    assert "LIMIT = 3" in code and "__main__" not in code and "input(" not in code


def test_raw_text_without_fences_starts_at_the_first_code_line():
    reply = "Sure! Here it is:\ndef add(xs):\n    return sum(xs)\nThis sums the list."
    assert extract_code(reply, "add").strip() == "def add(xs):\n    return sum(xs)"


def test_humaneval_program_full_function_runs_after_the_prompt():
    program = humaneval_program(PROMPT, "```python\ndef add(xs):\n    return sum(xs)\n```", "add")
    assert program.startswith(PROMPT.rstrip())
    assert program.rstrip().endswith("return sum(xs)")
    namespace: dict = {}
    exec(program, namespace)  # trusted text of this test
    assert namespace["add"]([1, 2]) == 3


def test_humaneval_program_body_only_completes_the_prompt_and_is_indented():
    for body in ("    return sum(xs)\n", "return sum(xs)"):
        namespace: dict = {}
        exec(humaneval_program(PROMPT, f"```python\n{body}\n```", "add"), namespace)
        assert namespace["add"]([2, 3]) == 5


# -- text answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "Canberra",
        "The capital is a city.\nAnswer: Canberra.",
        "It is **Canberra**",
        "Final answer: the Canberra",
        "\\boxed{Canberra}",
    ],
)
def test_text_answers_match_after_normalisation(reply):
    assert match_text(reply, ("canberra",)) == (True, "passed")


def test_text_answers_that_merely_mention_the_answer_do_not_match():
    passed, reason = match_text("Not Canberra, but Sydney.\nAnswer: Sydney", ("Canberra",))
    assert not passed and "Sydney" in reason
    assert match_text("it is 391", (), answer_regex=r"\b391\b")[0]
    assert not match_text("it is 401", (), answer_regex=r"\b391\b")[0]
    assert normalise("  The  Answer, is: 1,000! ") == "answer is 1000"


# -- benchmarks -----------------------------------------------------------------------------


def test_humaneval_loads_164_problems_from_the_package_data_file():
    bench = load_humaneval()
    assert len(bench.problems) == 164 and bench.name == "humaneval"
    first = bench.problems[0]
    assert first.id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert first.prompt in first.question and "def check" in first.test
    assert bench.hide == (bench.source,)
    assert [p.index for p in select(bench.problems, "0:164:4", None)][:3] == [0, 4, 8]
    assert len(select(bench.problems, "0:164:4", None)) == 41
    assert len(select(bench.problems, "0:164:16", 5)) == 5


def test_jsonl_items_of_each_kind(tmp_path):
    path = tmp_path / "items.jsonl"
    lines = [
        {"question": "Capital of Australia?", "answer": ["Canberra", "Canberra, ACT"]},
        {"id": "sq", "question": "17*23?", "answer_regex": r"\b391\b"},
        {"question": "Write def add(a, b).", "test": "assert add(2, 3) == 5"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    bench = load_benchmark(str(path))
    text, regex, code = bench.problems
    assert (text.id, text.kind, text.answers) == ("1", "text", ("Canberra", "Canberra, ACT"))
    assert "Answer:" in text.question
    assert (regex.id, regex.answer_regex, regex.question) == ("sq", r"\b391\b", "17*23?")
    assert (code.kind, code.entry_point, code.test) == ("code", "add", "assert add(2, 3) == 5")
    assert load_benchmark("jsonl", path).problems == bench.problems


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("not json", ["items.jsonl:1", "not JSON"]),
        ('{"answer": "x"}', ["items.jsonl:1", "question"]),
        ('{"question": "q", "answer": "a", "test": "t"}', ["exactly one"]),
        ('{"question": "q", "answer_regex": "("}', ["answer_regex"]),
    ],
)
def test_bad_jsonl_items_name_the_line(tmp_path, line, words):
    path = tmp_path / "items.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(EvalError) as caught:
        load_benchmark(str(path))
    assert all(word in str(caught.value) for word in words)


def test_bad_subset_and_unknown_benchmark_are_refused():
    problems = load_humaneval().problems
    for spec in ("4", "a:b", "0:10:0"):
        with pytest.raises(EvalError):
            select(problems, spec, None)
    with pytest.raises(EvalError, match="unknown benchmark"):
        load_benchmark("mmlu")


# -- scoring a run from its events ----------------------------------------------------------

RUN = "r1"


def _agent(agent: str, label: str) -> dict:
    return {"run_id": RUN, "agent": agent, "label": label}


def _events() -> list:
    a, b, c = _agent("a", "agent1"), _agent("b", "agent2"), _agent("c", "agent3")
    call = json.dumps({"id": "1", "name": "new_answer", "arguments": {"content": "B said X."}})
    return [
        ev.RunCreated(
            run_id=RUN,
            question="q",
            deadline=0.0,
            ts=100.0,
            agents=[
                ev.AgentInfo(id=x, label=f"agent{i}", provider="p", model=f"m{i}")
                for i, x in enumerate("abc", start=1)
            ],
        ),  # fmt: skip
        ev.TurnStarted(**a, turn_id="t1", phase="coordinate", number=1),
        ev.TurnStarted(**b, turn_id="t2", phase="coordinate", number=1),
        ev.TurnStarted(**c, turn_id="t3", phase="coordinate", number=1),
        ev.TokenUsage(**a, turn_id="t1", prompt_tokens=10, completion_tokens=5),
        ev.AnswerAccepted(**a, version="agent1.1", content="A first"),
        # b's answer repeated a's: it is accepted as a vote, its own text is in the call.
        ev.Chunk(**b, turn_id="t2", channel="tool_call", text=call),
        ev.VoteAccepted(
            **b, target="agent1", target_agent="a", reason="same", same_answer=True
        ),  # fmt: skip
        ev.AnswerAccepted(**c, version="agent3.1", content="C first"),
        ev.TokenUsage(**c, turn_id="t3", prompt_tokens=20, completion_tokens=7),
        ev.TurnStarted(**a, turn_id="t4", phase="coordinate", number=2),
        ev.AnswerAccepted(**a, version="agent1.2", content="A improved"),
        ev.TurnStarted(**a, turn_id="t5", phase="present", number=3),
        ev.FinalAnswer(**a, content="A presented"),
        ev.RunFinished(run_id=RUN, status="completed", winner="a", ts=130.5),
    ]


def test_fold_run_takes_first_answers_the_winners_latest_and_the_final():
    out = fold_run(_events())
    assert out.first_answers["a"]["text"] == "A first"
    assert out.first_answers["b"] == {"text": "B said X.", "version": "agent1.1",
                                      "source": "repeat"}  # fmt: skip
    assert out.first_answers["c"]["text"] == "C first"
    assert out.winner == "a" and out.winner_answer["text"] == "A improved"
    assert (out.final_answer, out.fallback) == ("A presented", False)
    assert (out.prompt_tokens, out.completion_tokens, out.model_calls) == (30, 12, 5)
    assert out.wall_seconds == 30.5 and out.status == "completed"
    assert [a["id"] for a in out.agents] == ["a", "b", "c"]


# -- results file and figures ---------------------------------------------------------------


def _record(pid: str, index: int, final: bool, members: dict, single: dict | None = None):
    record = {
        "id": pid, "index": index, "status": "completed", "wall_seconds": 10.0 + index,
        "tokens": 100 * (index + 1), "prompt_tokens": 80, "completion_tokens": 20,
        "model_calls": 5, "final": {"passed": final, "fallback": False},
        "winner": {"passed": final},
        "members": {k: {"passed": v} for k, v in members.items()},
        "oracle": any(members.values()), "baselines": {},
    }  # fmt: skip
    if single is not None:
        record["baselines"]["single"] = {
            k: {"passed": v, "tokens": 50, "wall_seconds": 2.0} for k, v in single.items()
        }
    return record


def test_results_file_cuts_a_torn_last_line_and_keeps_the_last_record_per_id(tmp_path):
    results = ResultsFile(tmp_path / "results.jsonl")
    results.append({"id": "p1", "v": 1})
    results.append({"id": "p2", "v": 1})
    results.append({"id": "p1", "v": 2})
    with results.path.open("a") as handle:
        handle.write('{"id": "p3", "v"')  # killed mid-write
    assert results.load() == {"p1": {"id": "p1", "v": 2}, "p2": {"id": "p2", "v": 1}}
    results.append({"id": "p3", "v": 1})
    assert set(results.load()) == {"p1", "p2", "p3"}
    assert differences({"config": {"a": 1}, "seed": 1}, {"config": {"a": 2}, "seed": 1}) == [
        "config"
    ]


def test_summary_figures_and_chart(tmp_path):
    records = [
        _record("p1", 0, True, {"x": True, "y": False}, {"x": True, "y": False}),
        _record("p2", 1, True, {"x": False, "y": True}, {"x": False, "y": False}),
        _record("p3", 2, False, {"x": False, "y": False}, {"x": False, "y": True}),
    ]
    summary = report.write_report(tmp_path, records, {"benchmark": "b", "config_source": "t"})
    rates = {s["key"]: (s["passed"], s["total"]) for s in summary["systems"]}
    assert rates == {
        "final": (2, 3), "winner": (2, 3), "member:x": (1, 3), "member:y": (1, 3),
        "single:x": (1, 3), "single:y": (1, 3), "oracle": (2, 3),
    }  # fmt: skip
    assert summary["headline"]["final_minus_best_member"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["headline"]["final_minus_oracle"] == 0
    assert summary["final_worse_than_winner"] == 0
    assert summary["cost"]["team"]["mean_tokens"] == 200
    assert summary["cost"]["single:x"]["mean_tokens"] == 50
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    chart = (tmp_path / "chart.png").read_bytes()
    assert chart.startswith(b"\x89PNG") and len(chart) > 10_000


def test_summary_counts_finals_worse_than_the_winners_answer(tmp_path):
    worse = _record("p1", 0, False, {"x": True})
    worse["winner"] = {"passed": True}
    records = [worse, _record("p2", 1, True, {"x": True})]
    summary = report.summarise(records, {"benchmark": "b", "config_source": "t"})
    assert summary["final_worse_than_winner"] == 1
    assert summary["headline"]["final_minus_oracle"] == pytest.approx(-0.5)
    out = io.StringIO()
    report.print_summary(summary, out)
    assert "failed where the winner's own answer passed: 1 of 2" in out.getvalue()

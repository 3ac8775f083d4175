"""The examples read from HumanEval's tasks are right: the reference solutions pass them.

A wrong example would fail every correct answer, so this is the reader's real test:
every one of HumanEval's 164 tasks is read as the team is asked it, and each reference
solution is run against the examples found, in the gateway's check sandbox.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from massgen_cli.evals.datasets import humaneval_path, load_humaneval
from massgen_gateway.answer_checks import run_check
from massgen_gateway.exec_calls import exec_cgroups
from massgen_gateway.sandbox import sandbox_available
from massgen_proto.code_text import task_examples

pytestmark = pytest.mark.skipif(not sandbox_available(), reason="bubblewrap is not installed")

WRONG_IN_THE_TASK = {
    "HumanEval/47": "median([-10, 4, 6, 1000, 10, 20]) is 8.0, the task says 15.0",
    "HumanEval/116": "the task's own example says sort_array([1, 5, 2, 3, 4]) is sorted by value",
    "HumanEval/130": "tri(1) returns a list, the task shows 3",
    "HumanEval/148": "bf('Earth', 'Mercury') returns a tuple, the task shows a string",
}
"""Tasks whose docstring gives an example its own reference solution does not meet."""


async def test_reference_solutions_pass_the_examples_read_from_their_tasks():
    with gzip.open(humaneval_path(), "rt", encoding="utf-8") as data:
        solutions = {item["task_id"]: item for item in map(json.loads, data)}
    cgroups = exec_cgroups()
    gate = asyncio.Semaphore(4)

    async def check(problem_id: str, question: str) -> tuple[str, object]:
        item = solutions[problem_id]
        async with gate:
            code = item["prompt"] + item["canonical_solution"]
            return problem_id, await run_check(code, task_examples(question), 1 << 24, cgroups)

    problems = [p for p in load_humaneval().problems if task_examples(p.question)]
    results = dict(await asyncio.gather(*(check(p.id, p.question) for p in problems)))
    failing = {
        problem_id: result
        for problem_id, result in results.items()
        if isinstance(result, str) or result.passed < result.total
    }
    assert set(failing) == set(WRONG_IN_THE_TASK), failing
    # 150 of the 164 tasks give examples the reader can take (422 in all, when written).
    assert len(problems) == 150
    assert sum(r.total for r in results.values() if not isinstance(r, str)) >= 420

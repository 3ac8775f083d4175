"""Grade one answer to one problem: code in the sandbox, text by matching."""

from __future__ import annotations

import threading

from .datasets import Benchmark, Problem
from .extract import extract_code, humaneval_program, match_text
from .sandbox import Limits, Sandbox, Verdict

__all__ = ["Grader"]


class Grader:
    """Grades answers to a benchmark's problems; identical programs are graded once."""

    def __init__(self, benchmark: Benchmark, limits: Limits | None = None) -> None:
        self.sandbox = Sandbox(limits, hide=benchmark.hide)
        self._cache: dict[tuple[str, str], Verdict] = {}
        self._lock = threading.Lock()

    def program(self, problem: Problem, answer: str) -> str:
        """The code that runs for ``answer`` (code problems)."""
        if problem.prompt is not None and problem.entry_point:
            return humaneval_program(problem.prompt, answer, problem.entry_point)
        return extract_code(answer, problem.entry_point)

    def grade(self, problem: Problem, answer: str | None) -> Verdict:
        """Blocking (a sandbox run for code): call it from a thread in async code."""
        if answer is None or not answer.strip():
            return Verdict(False, "no answer")
        if problem.kind == "text":
            passed, reason = match_text(answer, problem.answers, problem.answer_regex)
            return Verdict(passed, reason)
        program = self.program(problem, answer)
        key = (problem.id, program)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        verdict = self.sandbox.grade(
            program, problem.test or "", entry_point=problem.entry_point,
            prompt=problem.prompt, bind_all=problem.prompt is None,
        )  # fmt: skip
        with self._lock:
            self._cache[key] = verdict
        return verdict

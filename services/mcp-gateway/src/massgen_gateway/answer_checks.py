"""Run an answer's code against the task's own examples, in the command sandbox.

Workers ask for it (``CheckRequest``) when their agent submits an answer or a final
presentation whose task shows examples (``code_text.task_examples``). The code runs in
bubblewrap with nothing mounted but the system folders and the Python installation: no
network, no workspace, a private ``/tmp``, CPU, memory, process and output limits. Only
the sandbox ever runs it: where bubblewrap cannot build its sandbox, there is no check
(the worker then submits the answer unchecked).

The result is evidence, not a security boundary: the code runs in the same interpreter
as the doctest runner and could fake its own result. It is the agent's own answer that
it would flatter, which its vote-givers and the presenter read as well.
"""

from __future__ import annotations

import json
import secrets
import sys

from massgen_proto.messages import CodeCheck

from .execution import Confinement, ExecLimits, PidsCgroups, sandbox_problem
from .sandbox import python_roots, sandbox_available

__all__ = ["CHECK_LIMITS", "run_check"]

_KILLED = (128 + 9, 128 + 24)
"""Exit codes bubblewrap passes on for a program killed by SIGKILL or SIGXCPU."""

CHECK_LIMITS = ExecLimits(
    timeout=10.0, cpu_seconds=5, memory_bytes=1 << 30, file_bytes=8 << 20,
    max_processes=16, output_bytes=16_000,
)  # fmt: skip
"""Bounds of one check: a correct answer to a task with examples runs in well under a
second; a loop, a fork bomb or a flood of output is cut off."""

# The runner reads {code, examples, marker} on stdin, runs the code as a module (its
# main guard not taken), then each example with doctest, and prints one line: the
# marker and the result as JSON. When the whole code fails at the top level (a stray
# call, input()), only its imports and definitions are kept and run.
_RUNNER = r"""
import ast, doctest, io, json, sys
data = json.loads(sys.stdin.read())
out = sys.stdout
def report(passed, total, failure=""):
    out.write("\n" + data["marker"] + json.dumps(
        {"passed": passed, "total": total, "failure": failure[:500]}) + "\n")
    out.flush()
examples = doctest.DocTestParser().get_examples(data["examples"])
ns = {"__name__": "__answer__"}
try:
    exec(compile(data["code"], "<answer>", "exec"), ns)
except BaseException as first:
    tree = ast.parse(data["code"])
    keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    tree.body = [n for n in tree.body if isinstance(n, keep)]
    ns = {"__name__": "__answer__"}
    try:
        exec(compile(tree, "<answer>", "exec"), ns)
    except BaseException as error:
        report(0, len(examples), f"the code does not run: {type(error).__name__}: {error}")
        raise SystemExit(0)
class Runner(doctest.DocTestRunner):
    first = ""
    def report_failure(self, out, test, example, got):
        if not self.first:
            self.first = (f"{example.source.strip()[:200]} gave {got.strip()[:150]!r}, "
                          f"expected {example.want.strip()[:150]!r}")
    def report_unexpected_exception(self, out, test, example, exc_info):
        if not self.first:
            self.first = (f"{example.source.strip()[:200]} raised "
                          f"{exc_info[0].__name__}: {str(exc_info[1])[:200]}")
runner = Runner(verbose=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
test = doctest.DocTest(examples, ns, "task", None, 0, None)
result = runner.run(test, out=io.StringIO().write, clear_globs=False)
report(result.attempted - result.failed, result.attempted, runner.first)
"""


def _parse(stdout: str, marker: str, total: int) -> CodeCheck | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker):
            try:
                data = json.loads(line[len(marker) :])
                return CodeCheck(
                    passed=min(int(data["passed"]), total),
                    total=total,
                    failure=str(data.get("failure", ""))[:500],
                )
            except (ValueError, KeyError, TypeError):
                return None
    return None


async def run_check(
    code: str, examples: str, tmp_bytes: int, cgroups: PidsCgroups | None = None
) -> CodeCheck | str:
    """The check of ``code`` against ``examples`` (doctest source), or why there is none.

    Args:
        code: the answer's code (``code_text.answer_code``).
        examples: the task's examples (``code_text.task_examples``).
        tmp_bytes: size of the sandbox's private ``/tmp``.
        cgroups: where to make the call's pids cgroup (as for commands).
    """
    import doctest

    total = len(doctest.DocTestParser().get_examples(examples))
    if not total:
        return "the task gives no examples to check"
    if not sandbox_available():
        return "bubblewrap is not installed: answers are not run outside a sandbox"
    problem = await sandbox_problem()
    if problem:
        return problem
    marker = f"@@check-{secrets.token_hex(8)}@@"
    confinement = Confinement(
        sandboxed=True, mounts=(), readable=tuple(python_roots()), limits=CHECK_LIMITS,
        tmp_bytes=tmp_bytes, cgroups=cgroups,
    )  # fmt: skip
    stdin = json.dumps({"code": code, "examples": examples, "marker": marker}).encode()
    argv = [sys.executable, "-I", "-S", "-c", _RUNNER]
    outcome = await confinement.run(
        argv, workdir="/tmp", env={"PATH": "/usr/bin:/bin"}, stdin=stdin
    )
    if outcome.timed_out:
        return CodeCheck(
            passed=0, total=total,
            failure=f"the examples did not finish within {CHECK_LIMITS.timeout:g} s",
        )  # fmt: skip
    found = _parse(outcome.stdout, marker, total)
    if found is not None:
        return found
    if outcome.signal is not None or outcome.exit_code in _KILLED:
        why = f"killed by signal {outcome.signal} (out of CPU time, memory or processes)"
    else:
        last = outcome.stderr.strip().splitlines()[-1:]
        why = last[0][:300] if last else f"exit code {outcome.exit_code}"
    return CodeCheck(passed=0, total=total, failure=f"the check ended early: {why}")

"""The eval loop: one team run per problem through the normal stack, graded, recorded.

Runs go through the same code as ``massgen "question"``: a run target (``targets``),
either a warm or private embedded stack (``StackTarget``, events from
``client.follow_run``) or a remote API (``ApiTarget``, events from ``api_client``).
Each scored problem is appended to ``results.jsonl`` at once, so an interrupted eval
resumes where it stopped; a run cancelled by the interruption is not recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..targets import ApiTarget, RunTarget, StackTarget, opened
from .datasets import Benchmark, Problem
from .grading import Grader
from .results import RESULTS, ResultsFile
from .sandbox import Limits
from .scoring import RunOutcome, fold_run

T = TypeVar("T")

__all__ = ["EvalAborted", "EvalSpec", "run_eval"]

TEXT_CAP = 20_000
"""Answer texts kept in a record (characters each)."""
GRADING_THREADS = 2


class EvalAborted(RuntimeError):
    """The stack cannot run the eval (a refused run, a dead worker, an unreachable API)."""


@dataclass
class EvalSpec:
    benchmark: Benchmark
    problems: list[Problem]
    out: Path
    config: dict[str, Any] | None
    """The team config mapping (None with ``team``: a team configured on the API)."""
    config_source: str
    api: str | None = None
    token: str | None = None
    team: str | None = None
    concurrency: int = 1
    baselines: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    embedded: bool = False
    debug: bool = False


def _cap(text: str | None) -> str | None:
    if text is None or len(text) <= TEXT_CAP:
        return text
    return text[:TEXT_CAP] + f"\n[... {len(text) - TEXT_CAP} more characters]"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _mark(passed: bool | None) -> str:
    return "✓" if passed else "✗"


class _Eval:
    def __init__(self, spec: EvalSpec, say: Callable[[str], None]) -> None:
        self.spec = spec
        self.say = say
        self.results = ResultsFile(spec.out / RESULTS)
        self.grader = Grader(spec.benchmark, spec.limits)
        self.grading = asyncio.Semaphore(GRADING_THREADS)
        self.cancel = asyncio.Event()
        self.target: RunTarget | None = None
        self.agents: list[Any] = []
        """Parsed agent configs (for the plain-chat baseline), pointed at local models."""
        self.done = 0
        self.total = 0

    # -- the stack --------------------------------------------------------------------

    def use(self, target: RunTarget) -> None:
        """Run on ``target`` (started), and take what the plain-chat baseline needs."""
        self.target = target
        if "single" in self.spec.baselines and not self.spec.api:
            from massgen_proto.config import parse_config

            # The target pointed local agents at their model server: use the same.
            self.agents = list(parse_config(target.config).agents)

    # -- one problem ------------------------------------------------------------------

    async def _grade(self, problem: Problem, text: str | None) -> dict[str, Any]:
        async with self.grading:
            verdict = await asyncio.to_thread(self.grader.grade, problem, text)
        return {"passed": verdict.passed, "reason": verdict.reason[:500]}

    async def _team_run(self, problem: Problem) -> RunOutcome | None:
        """One run of the team; None when it was cancelled (not to be recorded)."""
        from ..client import RunRefused
        from ..runlog import RunLog

        folder = self.spec.out / "runs" / f"{problem.index:03d}-{_safe(problem.id)}"
        runlog = RunLog(folder)
        events: list[Any] = []

        def on_event(event: Any) -> None:
            events.append(event)
            runlog.write(event)

        target = self.target
        assert target is not None, "use() a started target first"
        try:
            run_id = await target.create(problem.question)
            summary = await target.follow(
                problem.question, on_event, history=None, run_id=run_id, cancel=self.cancel
            )
        except RunRefused as error:
            raise EvalAborted(f"run refused: {error}") from None
        runlog.close(summary)
        if summary.status == "cancelled" or self.cancel.is_set():
            return None
        if summary.status in ("failed", "timed_out") and not target.alive():
            raise EvalAborted(f"the worker process died; see {self.spec.out / 'worker.log'}")
        return fold_run(events)

    async def _team_record(self, problem: Problem, outcome: RunOutcome) -> dict[str, Any]:
        members: dict[str, Any] = {}
        texts: dict[str, Any] = {"members": {}}
        agent_ids = [a["id"] for a in outcome.agents]
        graded = await asyncio.gather(
            *(self._grade(problem, (outcome.first_answers.get(a) or {}).get("text"))
              for a in agent_ids),
            self._grade(problem, (outcome.winner_answer or {}).get("text")),
            self._grade(problem, outcome.final_answer),
        )  # fmt: skip
        for agent, verdict in zip(agent_ids, graded, strict=False):
            first = outcome.first_answers.get(agent) or {}
            info = next(a for a in outcome.agents if a["id"] == agent)
            members[agent] = {
                **verdict, "version": first.get("version"), "source": first.get("source"),
                "model": info["model"], "provider": info["provider"],
            }  # fmt: skip
            texts["members"][agent] = _cap(first.get("text"))
        winner_verdict, final_verdict = graded[-2], graded[-1]
        texts["winner"] = _cap((outcome.winner_answer or {}).get("text"))
        texts["final"] = _cap(outcome.final_answer)
        return {
            "id": problem.id,
            "index": problem.index,
            "run_id": outcome.run_id,
            "status": outcome.status,
            "message": outcome.message,
            "wall_seconds": outcome.wall_seconds,
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "tokens": outcome.prompt_tokens + outcome.completion_tokens,
            "model_calls": outcome.model_calls,
            "members": members,
            "winner": {"agent": outcome.winner, **winner_verdict},
            "final": {"agent": outcome.final_agent, "fallback": outcome.fallback, **final_verdict},
            "oracle": any(m["passed"] for m in members.values()),
            "baselines": {},
            "answers": texts,
            "log_dir": f"runs/{problem.index:03d}-{_safe(problem.id)}",
        }

    async def _single_baseline(self, problem: Problem) -> dict[str, Any]:
        from .baseline import plain_chat

        replies = await asyncio.gather(*(plain_chat(a, problem.question) for a in self.agents))
        verdicts = await asyncio.gather(*(self._grade(problem, r["text"]) for r in replies))
        out: dict[str, Any] = {}
        for agent, reply, verdict in zip(self.agents, replies, verdicts, strict=True):
            if reply["error"]:
                verdict = {"passed": False, "reason": f"model call failed: {reply['error']}"}
            out[agent.id] = {
                **verdict,
                "tokens": reply["prompt_tokens"] + reply["completion_tokens"],
                "prompt_tokens": reply["prompt_tokens"],
                "completion_tokens": reply["completion_tokens"],
                "wall_seconds": reply["wall_seconds"],
                "error": reply["error"],
                "text": _cap(reply["text"]),
            }
        return out

    async def _unless_cancelled(self, work: Coroutine[Any, Any, T]) -> T | None:
        """``work``'s result, or None once the eval is interrupted (``work`` is then
        cancelled: a baseline call of a minute must not hold a Ctrl-C or SIGTERM up)."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.cancel.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return None

    async def problem(self, problem: Problem, record: dict[str, Any] | None) -> None:
        if record is None:
            outcome = await self._team_run(problem)
            if outcome is None:
                return
            record = await self._team_record(problem, outcome)
        for baseline in self.spec.baselines:
            if baseline in record.get("baselines", {}) or self.cancel.is_set():
                continue
            if baseline == "single":
                single = await self._unless_cancelled(self._single_baseline(problem))
                if single is not None:
                    record.setdefault("baselines", {})["single"] = single
        if self.cancel.is_set() and any(
            b not in record.get("baselines", {}) for b in self.spec.baselines
        ):
            # Interrupted before its baselines: keep the team run, redo the rest later.
            self.results.append(record)
            return
        record["graded_at"] = round(time.time(), 3)
        self.results.append(record)
        self.done += 1
        self.say(self._line(record))

    def _line(self, record: dict[str, Any]) -> str:
        members = "".join(_mark(m["passed"]) for m in record["members"].values())
        single = record.get("baselines", {}).get("single")
        parts = [
            f"[{self.done:>{len(str(self.total))}}/{self.total}] {record['id']:<16}",
            f"final {_mark(record['final']['passed'])}",
            f"winner {_mark(record['winner']['passed'])}",
            f"members {members or '-'}",
            f"oracle {_mark(record['oracle'])}",
        ]
        if single is not None:
            parts.append(f"single {''.join(_mark(s['passed']) for s in single.values())}")
        wall = record.get("wall_seconds")
        parts.append(f"{wall:.1f} s" if wall is not None else "- s")
        parts.append(f"{record['tokens']:,} tok, {record['model_calls']} calls")
        if record["status"] != "completed":
            parts.append(f"({record['status']}: {record['message'][:80]})")
        return "  ".join(parts)


def _target(spec: EvalSpec) -> RunTarget:
    if spec.api:
        return ApiTarget(spec.api, spec.token, spec.config, spec.team)
    return StackTarget(spec.config or {}, spec.out, embedded=spec.embedded, debug=spec.debug)


async def _run_all(job: _Eval, pending: list[Problem], records: dict[str, dict[str, Any]]) -> None:
    """Every pending problem, ``concurrency`` at a time; all cancelled when one fails."""
    gate = asyncio.Semaphore(max(1, job.spec.concurrency))

    async def one(problem: Problem) -> None:
        async with gate:
            if job.cancel.is_set():
                return
            await job.problem(problem, records.get(problem.id))

    tasks = [asyncio.ensure_future(one(p)) for p in pending]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        job.cancel.set()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _pending(spec: EvalSpec, records: dict[str, dict[str, Any]]) -> list[Problem]:
    todo = []
    for problem in spec.problems:
        record = records.get(problem.id)
        if record is None or any(b not in record.get("baselines", {}) for b in spec.baselines):
            todo.append(problem)
    return todo


async def run_eval(spec: EvalSpec, say: Callable[[str], None]) -> tuple[str, list[dict]]:
    """Run every pending problem; returns (how it ended, the selected problems' records).

    How it ended: ``done``, or ``interrupted`` (Ctrl-C / SIGTERM: in-flight runs were
    cancelled and not recorded). Raises :class:`EvalAborted` when the stack fails.
    """
    job = _Eval(spec, say)
    records = job.results.load()
    pending = _pending(spec, records)
    selected_ids = {p.id for p in spec.problems}
    skipped = len(spec.problems) - len(pending)
    if skipped:
        say(f"resuming: {skipped} of {len(spec.problems)} problem(s) already scored in "
            f"{spec.out / RESULTS}")  # fmt: skip
    ended = "done"
    if pending:
        job.total = len(pending)
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_signal() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts > 1:
                os._exit(130)
            note = "running problems are cancelled and will run again on resume"
            print(f"\nmassgen: stopping the eval: {note} (Ctrl-C again to quit at once)",
                  file=sys.stderr, flush=True)  # fmt: skip
            job.cancel.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            if not spec.api:
                say(f"starting the stack for {len(pending)} problem(s)")
            async with opened(_target(spec), debug=spec.debug, log_folder=spec.out) as target:
                job.use(target)
                await _run_all(job, pending, records)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        if job.cancel.is_set():
            ended = "interrupted"
    records = job.results.load()
    chosen = [records[i] for i in (p.id for p in spec.problems) if i in records]
    return ended, [r for r in chosen if r["id"] in selected_ids]

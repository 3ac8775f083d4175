"""Runs on disk: ``massgen runs list | show RUN [--table] | replay RUN [--speed X]``.

Everything is read back from a run's log folder (``events.jsonl`` first, the other
files only as a convenience), so a run is shown the same way however it was made.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from massgen_proto import events as ev
from massgen_proto.events import RunEventAdapter
from massgen_proto.summary import RunSummary, summarize

from .table import coordination_rows, render_plain, render_rich

__all__ = [
    "ReplayClock",
    "RunNotFound",
    "StoredRun",
    "estimate_cost",
    "find_run",
    "list_runs",
    "load_events",
    "replay",
    "show_run",
]


class RunNotFound(LookupError):
    """No log folder matches the name; the message lists what exists."""


@dataclass
class StoredRun:
    """One run's log folder."""

    path: Path
    run_id: str

    @property
    def events_file(self) -> Path:
        return self.path / "events.jsonl"

    def status(self) -> dict[str, Any]:
        """``status.json`` if written, else a summary folded from the events."""
        try:
            return json.loads((self.path / "status.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return summarize(self.run_id, load_events(self.path)).to_json(str(self.path))


def load_events(folder: Path) -> list[ev.RunEvent]:
    """Every event of a log folder, in order (a torn last line is skipped)."""
    out: list[ev.RunEvent] = []
    try:
        lines = (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        if line.strip():
            try:
                out.append(RunEventAdapter.validate_json(line))
            except ValueError:
                continue
    return out


def list_runs(root: Path) -> list[StoredRun]:
    """Log folders under ``root``, oldest first."""
    if not root.is_dir():
        return []
    runs = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and (path / "events.jsonl").exists():
            run_id = path.name.split("_", 2)[-1] if path.name.count("_") >= 2 else path.name
            runs.append(StoredRun(path, run_id))
    return runs


def find_run(root: Path, name: str) -> StoredRun:
    """A run by id, folder name, path, unique prefix of either, or ``last``.

    Raises:
        RunNotFound: nothing or several runs match.
    """
    direct = Path(name).expanduser()
    if direct.is_dir() and (direct / "events.jsonl").exists():
        runs = list_runs(direct.parent)
        for run in runs:
            if run.path.resolve() == direct.resolve():
                return run
        return StoredRun(direct, direct.name)
    runs = list_runs(root)
    if not runs:
        raise RunNotFound(f"no runs under {root}")
    if name in ("last", "latest"):
        return runs[-1]
    exact = [r for r in runs if name in (r.run_id, r.path.name)]
    if exact:
        return exact[-1]
    matches = [r for r in runs if r.run_id.startswith(name) or r.path.name.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(r.run_id for r in matches[:10])
        raise RunNotFound(f"{name!r} matches several runs: {names}")
    recent = ", ".join(r.run_id for r in runs[-5:])
    raise RunNotFound(f"no run {name!r} under {root} (recent: {recent})")


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}min"


def print_run_list(root: Path, out: TextIO) -> int:
    """``massgen runs list``."""
    runs = list_runs(root)
    if not runs:
        out.write(f"no runs under {root}\n")
        return 0
    out.write(f"{'run':<20} {'started':<19} {'status':<10} {'time':>7} {'winner':<14} question\n")
    for run in runs:
        status = run.status()
        events = load_events(run.path)[:1]
        started = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(events[0].ts)) if events else "-"
        )
        question = events[0].question if events and isinstance(events[0], ev.RunCreated) else ""
        question = " ".join(question.split())
        out.write(
            f"{run.run_id:<20} {started:<19} {status.get('status', '?'):<10} "
            f"{_fmt_duration(status.get('duration_seconds')):>7} "
            f"{str(status.get('winner') or '-'):<14} {question[:60]}\n"
        )
    out.write(f"({len(runs)} run(s) in {root})\n")
    return 0


def estimate_cost(models: dict[str, str], tokens: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Dollar cost per agent where litellm knows the model's price.

    Args:
        models: agent id -> "provider/model" as announced by the run.
        tokens: agent id -> {prompt_tokens, completion_tokens}.

    Returns:
        agent id -> dollars (float) or None when the price is unknown.
    """
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network for prices
    try:
        import litellm  # only here: a second of import time nobody else should pay
    except ImportError:
        return dict.fromkeys(tokens)
    out: dict[str, Any] = {}
    for agent, usage in tokens.items():
        spec = models.get(agent, "")
        provider, _, model = spec.partition("/")
        price = None
        for name in (model, spec, f"{provider}/{model}"):
            if not name:
                continue
            try:
                prompt, completion = litellm.cost_per_token(
                    model=name,
                    prompt_tokens=usage.get("prompt_tokens", 0),
                    completion_tokens=usage.get("completion_tokens", 0),
                )
            except Exception:  # noqa: BLE001 - litellm raises many kinds for unknown models
                continue
            price = prompt + completion
            break
        out[agent] = price
    return out


def show_run(run: StoredRun, out: TextIO, table: bool = False, cost: bool = True) -> int:
    """``massgen runs show RUN``: question, answers, votes, final answer, timing, tokens."""
    events = load_events(run.path)
    if not events:
        out.write(f"{run.path}: no events recorded\n")
        return 1
    if table:
        _show_table(run, events, out)
        return 0
    summary: RunSummary = summarize(run.run_id, events)
    created = next((e for e in events if isinstance(e, ev.RunCreated)), None)
    models = {a.id: f"{a.provider}/{a.model}" for a in created.agents} if created else {}
    labels = {a.id: a.label for a in created.agents} if created else dict(summary.labels)
    _write_header(run, summary, out)
    _write_agents(summary, models, labels, out, cost=cost)
    _write_answers_and_votes(summary, events, out)
    out.write("\nfinal answer")
    if summary.winner:
        out.write(f" (from {labels.get(summary.winner, summary.winner)} {summary.winner})")
    out.write(":\n")
    out.write((summary.final_answer or "(none)").strip() + "\n")
    return 0


def _show_table(run: StoredRun, events: list[ev.RunEvent], out: TextIO) -> None:
    """``--table``: the coordination table, drawn with rich on a terminal."""
    data = coordination_rows(events)
    if out.isatty():
        from rich.console import Console

        Console(file=out).print(render_rich(data, title=f"run {run.run_id}"))
    else:
        out.write(render_plain(data))


def _write_header(run: StoredRun, summary: RunSummary, out: TextIO) -> None:
    """Status, folder, question, start time and timing."""
    w = out.write
    w(f"run {run.run_id} — {summary.status}" + (f": {summary.message}" if summary.message else ""))
    w(f"\nfolder: {run.path}\n")
    w(f"question: {summary.question}\n")
    if summary.started_at:
        w(f"started: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(summary.started_at))}\n")
    duration = (
        summary.finished_at - summary.started_at
        if summary.finished_at and summary.started_at
        else None
    )
    first = (
        summary.first_turn_at - summary.started_at
        if summary.first_turn_at and summary.started_at
        else None
    )
    w(f"timing: total {_fmt_duration(duration)}, first turn after {_fmt_duration(first)}\n")


def _write_agents(
    summary: RunSummary,
    models: dict[str, str],
    labels: dict[str, str],
    out: TextIO,
    *,
    cost: bool,
) -> None:
    """One line per agent: model, last status, tokens and cost; then the total cost."""
    w = out.write
    w("\nagents:\n")
    # Runs record their cost as they go (worker-side prices); older logs get an estimate.
    unpriced = {a: t for a, t in summary.tokens.items() if a not in summary.costs}
    costs: dict[str, Any] = dict(summary.costs)
    if cost and unpriced:
        costs.update(estimate_cost(models, unpriced))
    total_cost = 0.0
    known = False
    for agent, label in labels.items():
        usage = summary.tokens.get(agent, {})
        price = costs.get(agent)
        if price is not None:
            total_cost += price
            known = True
        price_text = f"${price:.4f}" if price is not None else "cost unknown"
        w(
            f"  {label:<8} {agent:<16} {models.get(agent, ''):<36} "
            f"{summary.agents.get(agent, '?'):<10} tokens {usage.get('prompt_tokens', 0)} in / "
            f"{usage.get('completion_tokens', 0)} out, {price_text}\n"
        )
    if known:
        w(f"  total cost: ${total_cost:.4f} (litellm prices)\n")


def _write_answers_and_votes(summary: RunSummary, events: list[ev.RunEvent], out: TextIO) -> None:
    """Every accepted answer (one line each), every accepted vote, the last tally."""
    w = out.write
    w(f"\nanswers ({len(summary.answers)}):\n")
    for answer in summary.answers:
        text = " ".join(answer.content.split())
        w(f"  {answer.version:<10} {text[:100]}{'…' if len(text) > 100 else ''}\n")
    votes = [e for e in events if isinstance(e, ev.VoteAccepted)]
    w(f"\nvotes ({len(votes)} accepted; the last set counted):\n")
    for vote in votes:
        w(f"  {vote.label} → {vote.target}: {vote.reason}\n")
    consensus = [e for e in events if isinstance(e, ev.Consensus)]
    if consensus:
        tally = ", ".join(f"{k} {v}" for k, v in consensus[-1].votes.items())
        w(f"  tally: {tally} → winner {consensus[-1].winner_label}\n")


async def replay(
    events: list[ev.RunEvent],
    display: Any,
    clock: ReplayClock,
    speed: float = 1.0,
    max_gap: float = 3.0,
) -> None:
    """Feed recorded events to ``display`` with their original spacing / ``speed``.

    Gaps longer than ``max_gap`` seconds (at replay speed) are shortened to it.
    ``speed <= 0`` replays at once. Give the display ``clock`` too, so the times it
    shows are the recording's.
    """
    from .display import showing

    async with showing(display):
        previous: float | None = None
        for event in events:
            if previous is not None and speed > 0:
                gap = min(max(0.0, event.ts - previous) / speed, max_gap)
                await asyncio.sleep(gap)
            previous = event.ts
            clock.mark(event.ts)
            display(event)
            if speed <= 0:
                await asyncio.sleep(0)


class ReplayClock:
    """Event time during a replay: the last event's time plus scaled wall time since."""

    def __init__(self, speed: float) -> None:
        self.speed = speed if speed > 0 else 1.0
        self._ts: float | None = None
        self._wall = time.monotonic()

    def mark(self, ts: float) -> None:
        self._ts, self._wall = ts, time.monotonic()

    def __call__(self) -> float:
        if self._ts is None:
            return time.time()
        return self._ts + (time.monotonic() - self._wall) * self.speed

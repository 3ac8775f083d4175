"""Benchmark: this project's ``massgen`` command side by side with MassGen 0.1.97.

Both run the same question as a user does, as a subprocess, against the same scripted
fake model (an OpenAI-compatible HTTP server on loopback, in this process, streaming
200 pieces per response at 0 or 10 ms each):

- this project: ``.venv/bin/massgen --config team.yaml --embedded --output json Q``
  (a private embedded stack: nats-server, orchestrator, worker; started and stopped
  by the command);
- MassGen: ``massgen --config team.yaml --automation --no-session-registry Q`` from
  its own virtualenv (``.bench/massgen-venv``, installed by ``massgen_peer.py`` on
  first use and reused after).

Both read the same team file: three ``chatcompletion`` agents whose ``base_url`` is
the fake (no ``api_key`` in the file: MassGen 0.1.97 crashes on one, so both get
``OPENAI_API_KEY=dummy``). Each run gets a fresh working directory and ``HOME``.

Cases:

- **same answer**: all three agents give the same answer, then vote for agent1;
- **disagree once**: the first answers differ, agent3's says Sydney; once agent3 sees
  another agent's answer it disagrees once more with a new answer (Canberra after
  all), then everyone votes for agent1.

Runs alternate between the two systems (P M, M P, ... within each cell), after one
untimed warm-up run of each. Per run: wall time of the command, CPU (user + sys of the
whole process tree: ``RUSAGE_CHILDREN`` deltas; every descendant is reaped by its
parent, and a process that outlives the command is reported and ended), peak memory
(the largest sum of RSS over the live tree, sampled every 100 ms, and the largest
single process's ``VmHWM``), the requests the fake model received, the time to the
first model request (start-up), where the wall time goes (ready / coordination /
after, from each system's own logs) and CPU per program of the tree. Medians and
project/MassGen ratios go to the ``vs_massgen`` section of BENCHMARKS.md.

    .venv/bin/python bench/bench_vs_massgen.py [--runs 4] [--quick] [--no-install]
    .venv/bin/python bench/run_all.py vs_massgen     # writes the BENCHMARKS.md section

If MassGen cannot be installed the section says why and the bench exits 0 (skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)

from bench.massgen_peer import (  # noqa: E402
    DEFAULT_VENV,
    MASSGEN_VERSION,
    PeerUnavailable,
    ensure_massgen,
)
from tests.support.fakes.agents import offered_tools, study_agent, user_text  # noqa: E402
from tests.support.fakes.openai_server import FakeOpenAIServer, Step, answer, text, vote  # noqa: E402

QUESTION = "What is the capital of Australia?"
TOKENS = 200
DELAYS = (0.0, 0.01)
"""Seconds per streamed piece."""
RUN_TIMEOUT = 300.0
SAMPLE_EVERY = 0.1
PAGE = os.sysconf("SC_PAGE_SIZE")
RAW = ROOT / ".bench" / "vs_massgen-last.json"
"""Every run's figures from the last invocation (for a closer look; not committed)."""

TARGETS = (
    # (ms per token, metric, at most this ratio project / MassGen)
    (10, "wall", 0.6),
    (10, "cpu", 0.5),
    (0, "wall", 0.4),
)

# -- the scripted agents -----------------------------------------------------------

SAME = "Canberra is the capital of Australia."
DIFFERENT = [
    "Canberra is the capital of Australia.",
    "The capital of Australia is Canberra, chosen as a compromise between Sydney and Melbourne.",
    "Sydney is the capital of Australia.",
]
RECONSIDERED = "On reflection I was wrong: Canberra, not Sydney, is where the government sits."


def disagree_once(first: str, second: str, **options: Any) -> Callable[[dict[str, Any]], Step]:
    """Answer ``first``; on seeing another agent's answer, answer ``second`` once; then vote.

    The vote goes to agent1. With no tools (this project's presentation) it presents;
    MassGen presents through ``new_answer``, so with everything answered it answers again.
    """

    def behave(request: dict[str, Any]) -> Step:
        tools = offered_tools(request)
        if not tools:
            return text(f"Final: {second}", **options)
        seen = user_text(request)
        others = any(a in seen for a in DIFFERENT if a != first)
        if "new_answer" in tools and first not in seen and second not in seen:
            return answer(first, **options)
        if "new_answer" in tools and second not in seen and others:
            return answer(second, **options)
        if "vote" in tools:
            return vote("agent1", "agreed after all", **options)
        return answer(second, **options)

    return behave


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    behaviours: Callable[[], list[Callable[[dict[str, Any]], Step]]]


CASES = [
    Case("same", "same answer", lambda: [study_agent(SAME, "agent1") for _ in range(3)]),
    Case(
        "disagree",
        "disagree once",
        lambda: [
            study_agent(DIFFERENT[0], "agent1"),
            study_agent(DIFFERENT[1], "agent1"),
            disagree_once(DIFFERENT[2], RECONSIDERED),
        ],
    ),
]
MODELS = ["m1", "m2", "m3"]


def team_yaml(base_url: str) -> str:
    """The team file both commands read (MassGen-compatible YAML)."""
    lines = ["agents:"]
    for i, model in enumerate(MODELS):
        lines += [
            f"  - id: agent_{'abc'[i]}",
            "    backend:",
            "      type: chatcompletion",
            f"      model: {model}",
            f"      base_url: {base_url}",
        ]
    return "\n".join(lines) + "\n"


# -- measuring a process tree -------------------------------------------------------


TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Stat:
    ppid: int
    cpu: float
    """User + system seconds so far."""
    started: str
    """Start time in clock ticks since boot (with the pid: one process's identity)."""
    rss: int
    """Resident bytes now."""


def _stat(pid: int) -> _Stat | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return _Stat(int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, fields[19],
                     int(fields[21]) * PAGE)  # fmt: skip
    except (OSError, IndexError, ValueError):
        return None


def _all_stats() -> dict[int, _Stat]:
    """Every process's /proc stat (~2 ms of CPU for ~100 processes).

    The tree is found from parent pids rather than ``/proc/PID/task/TID/children``,
    which the kernel documents as unreliable and which missed children here.
    """
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            stats[int(entry)] = stat
    return stats


def _program(pid: int) -> str:
    """Short program name: ``nats-server``; ``python -m pkg`` -> pkg; ``python x`` -> x."""
    try:
        words = [w.decode(errors="replace") for w in
                 Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if w]  # fmt: skip
    except OSError:
        return "?"
    name = Path(words[0]).name if words else "?"
    if name.startswith("python") and len(words) > 1:
        name = words[2] if words[1] == "-m" and len(words) > 2 else Path(words[1]).name
    return name


def _hwm_kb(pid: int) -> int:
    """Peak resident memory of ``pid`` so far (VmHWM, kB)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler:
    """Samples a process tree every ``SAMPLE_EVERY``: sum of RSS, largest VmHWM, CPU per
    process, every process seen."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_sum = 0
        self.peak_single_kb = 0
        self.seen: dict[int, str] = {}
        """pid -> start time of every descendant seen (to find ones left running)."""
        self.cpu_seen: dict[int, tuple[float, str]] = {}
        """pid -> (CPU seconds at the last sample, program name at first sight)."""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self.sample()
            if self._done.wait(SAMPLE_EVERY):
                return

    def sample(self) -> None:
        stats = _all_stats()
        children: dict[int, list[int]] = {}
        for pid, stat in stats.items():
            children.setdefault(stat.ppid, []).append(pid)
        total, todo = 0, [self.root]
        while todo:
            pid = todo.pop()
            stat = stats.get(pid)
            if stat is None:
                continue
            todo += children.get(pid, ())
            total += stat.rss
            self.seen.setdefault(pid, stat.started)
            # the latest name it had while alive (a zombie has no cmdline; a fresh child
            # may not have exec'd yet)
            name = _program(pid)
            if name == "?" and pid in self.cpu_seen:
                name = self.cpu_seen[pid][1]
            self.cpu_seen[pid] = (stat.cpu, name)
            self.peak_single_kb = max(self.peak_single_kb, _hwm_kb(pid))
        self.peak_sum = max(self.peak_sum, total)

    def cpu_by_program(self) -> dict[str, float]:
        """Sampled CPU seconds per program name over the tree."""
        totals: dict[str, float] = {}
        for seconds, name in self.cpu_seen.values():
            totals[name] = totals.get(name, 0.0) + seconds
        return totals

    def strays(self) -> list[int]:
        """Descendants seen during the run that still live (same pid, same start time)."""
        alive = []
        for pid, started in self.seen.items():
            stat = _stat(pid)
            if pid != self.root and stat is not None and stat.started == started:
                alive.append(pid)
        return alive


@dataclass
class Run:
    system: str
    case: str
    delay_ms: int
    order: int
    ok: bool
    detail: str
    wall: float
    cpu: float
    peak_tree_mb: float
    peak_single_mb: float
    requests: int
    startup: float | None
    """Seconds from the command's start to the first model request."""
    strays: int = 0
    started_epoch: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds: ``ready`` (start -> coordination starts), ``coordination``, ``after``
    (coordination done -> exit); the project adds ``worker_ready``."""
    cpu_by_program: dict[str, float] = field(default_factory=dict)
    """Sampled CPU seconds per program of the tree (misses each process's last ~100 ms)."""
    extra: dict[str, Any] = field(default_factory=dict)


def _clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        # the workspace's import path and venv must not leak into MassGen's interpreter
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.endswith("_API_KEY")
    }  # fmt: skip
    env.update(
        HOME=str(home),
        OPENAI_API_KEY="dummy",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        time.sleep(1.0)


def run_command(
    system: str, command: list[str], folder: Path, fake: FakeOpenAIServer
) -> tuple[Run, str, str]:
    """Run ``command`` in ``folder`` (fresh cwd and HOME) and measure its process tree."""
    home = folder / "home"
    home.mkdir(parents=True)
    out_path, err_path = folder / "stdout.txt", folder / "stderr.txt"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    requests_before = len(fake.requests)
    started_epoch, started = time.time(), time.monotonic()
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            command, cwd=folder, env=_clean_env(home), stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, start_new_session=True,
        )  # fmt: skip
        sampler = TreeSampler(proc.pid).start()
        try:
            proc.wait(timeout=RUN_TIMEOUT)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            sampler.sample()
            _kill([proc.pid, *sampler.strays()])
            proc.wait()
        finally:
            sampler.stop()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    strays = sampler.strays()
    if strays:  # left behind by the command: ours to end (not counted in its CPU)
        _kill(strays)
    requests = fake.requests[requests_before:]
    run = Run(
        system=system, case="", delay_ms=0, order=0,
        ok=not timed_out and proc.returncode == 0,
        detail=f"timed out after {RUN_TIMEOUT:.0f} s" if timed_out else f"exit {proc.returncode}",
        wall=wall,
        cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        peak_tree_mb=sampler.peak_sum / 2**20,
        peak_single_mb=sampler.peak_single_kb / 1024,
        requests=len(requests),
        startup=(requests[0].received_at - started_epoch) if requests else None,
        strays=len(strays),
        started_epoch=started_epoch,
        cpu_by_program=sampler.cpu_by_program(),
    )  # fmt: skip
    return run, out_path.read_text(errors="replace"), err_path.read_text(errors="replace")


# -- the two systems ----------------------------------------------------------------


def project_command(config: Path) -> list[str]:
    script = ROOT / ".venv" / "bin" / "massgen"
    if not script.exists():
        script = Path(sys.executable).with_name("massgen")
    return [str(script), "--config", str(config), "--embedded", "--output", "json", QUESTION]


def massgen_command(executable: Path, config: Path) -> list[str]:
    return [str(executable), "--config", str(config), "--automation", "--no-session-registry",
            QUESTION]  # fmt: skip


def check_project(run: Run, stdout: str, stderr: str, folder: Path) -> None:
    try:
        result = json.loads(stdout)
    except ValueError:
        run.ok = False
        run.detail += f"; no JSON result ({_tail(stderr)})"
        return
    run.extra = {"winner": result.get("winner"), "answers": len(result.get("answers") or [])}
    logs = sorted((folder / ".massgen" / "logs").glob("*/events.jsonl"))
    if logs:
        events = [json.loads(x) for x in logs[-1].read_text().splitlines() if x.strip()]
        first = next((e["ts"] for e in events if e["kind"] == "turn_started"), None)
        final = next((e["ts"] for e in events if e["kind"] == "run_finished"), None)
        if first is not None and final is not None:
            run.phases = {
                "ready": first - run.started_epoch,
                "coordination": final - first,
                "after": run.wall - (final - run.started_epoch),
            }
        worker = _log_time(logs[-1].with_name("worker.log"), "worker_started")
        if worker is not None:
            run.phases["worker_ready"] = worker - run.started_epoch
    if result.get("status") != "completed":
        run.ok = False
        run.detail += f"; status {result.get('status')}: {result.get('message', '')[:200]}"


def _log_time(path: Path, event: str) -> float | None:
    """Epoch seconds of the first structlog JSON line with ``event`` in a service log."""
    if not path.exists():
        return None
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event and "timestamp" in record:
            return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
    return None


def check_massgen(run: Run, stdout: str, stderr: str, folder: Path) -> None:
    statuses = sorted((folder / ".massgen").glob("massgen_logs/log_*/turn_1/attempt_*/status.json"))
    if not statuses:
        run.ok = False
        run.detail += f"; no status.json ({_tail(stderr or stdout)})"
        return
    status = json.loads(statuses[-1].read_text())
    outcomes = (status.get("rounds") or {}).get("by_outcome") or {}
    run.extra = {
        "winner": str(status.get("finish_reason_details", "")).removeprefix("Winner: "),
        "answers": outcomes.get("answer"),
        "votes": outcomes.get("vote"),
        "restarted": outcomes.get("restarted"),
        "attempts": len(statuses),
    }
    meta = status.get("meta") or {}
    if meta.get("start_time") and meta.get("elapsed_seconds") is not None:
        # MassGen's own clock: coordination (answers, votes, presentation) as it times it
        begin, took = float(meta["start_time"]), float(meta["elapsed_seconds"])
        run.phases = {
            "ready": begin - run.started_epoch,
            "coordination": took,
            "after": run.wall - (begin + took - run.started_epoch),
        }
    if status.get("finish_reason") != "completed":
        run.ok = False
        run.detail += f"; finish_reason {status.get('finish_reason')}"


def _tail(text: str, size: int = 300) -> str:
    return " ".join(text.strip().splitlines()[-3:])[-size:] or "no output"


def one_run(
    system: str, case: Case, delay: float, scratch: Path, massgen: Path | None, index: int
) -> Run:
    folder = scratch / f"{index:03d}-{system}-{case.key}-{int(delay * 1000)}ms"
    folder.mkdir(parents=True)
    fake = FakeOpenAIServer(token_delay=delay, tokens=TOKENS).start()
    try:
        for model, behaviour in zip(MODELS, case.behaviours(), strict=True):
            fake.behave(model, behaviour)
        config = folder / "team.yaml"
        config.write_text(team_yaml(fake.base_url))
        if system == "project":
            command, check = project_command(config), check_project
        else:
            assert massgen is not None
            command, check = massgen_command(massgen, config), check_massgen
        run, stdout, stderr = run_command(system, command, folder, fake)
        check(run, stdout, stderr, folder)
        if fake.errors:
            run.ok = False
            run.detail += f"; fake model: {fake.errors[0]}"
    finally:
        fake.stop()
    run.case, run.delay_ms, run.order = case.key, int(delay * 1000), index
    return run


# -- report -------------------------------------------------------------------------

SYSTEMS = ("project", "massgen")
METRICS = ("wall", "cpu", "peak_tree_mb", "peak_single_mb", "requests", "startup")


def _fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(p: float | None, m: float | None) -> float | None:
    return None if p is None or not m else p / m


@dataclass
class Cell:
    """The runs of one (ms per token, case), per system."""

    delay_ms: int
    case: str
    runs: dict[str, list[Run]]

    @property
    def title(self) -> str:
        return {c.key: c.title for c in CASES}[self.case]

    def done(self, system: str) -> list[Run]:
        return [r for r in self.runs[system] if r.ok]

    def median(self, system: str, key: str) -> float | None:
        return _median([getattr(r, key) for r in self.done(system) if getattr(r, key) is not None])

    def phase(self, system: str, key: str) -> float | None:
        return _median([r.phases[key] for r in self.done(system) if key in r.phases])

    def ratio(self, key: str) -> float | None:
        return _ratio(self.median("project", key), self.median("massgen", key))

    def best_ratio(self, key: str) -> float | None:
        """Ratio of the best (least) runs: the least disturbed by the machine's other load."""
        best = {s: min((getattr(r, key) for r in self.done(s)), default=None) for s in SYSTEMS}
        return _ratio(best["project"], best["massgen"])

    def pair_wall_ratios(self) -> list[float]:
        pairs = zip(self.runs["project"], self.runs["massgen"], strict=False)
        return [p.wall / m.wall for p, m in pairs if p.ok and m.ok]

    def cpu_by_program(self, system: str) -> dict[str, float]:
        done = self.done(system)
        names = {name for r in done for name in r.cpu_by_program}
        medians = {n: statistics.median(r.cpu_by_program.get(n, 0.0) for r in done) for n in names}
        return dict(sorted(medians.items(), key=lambda item: -item[1]))


def cells_of(runs: list[Run]) -> list[Cell]:
    keys = sorted({(r.delay_ms, r.case) for r in runs}, key=lambda k: (k[0], k[1] != "same"))
    return [
        Cell(d, c, {s: [r for r in runs if (r.delay_ms, r.case, r.system) == (d, c, s)]
                    for s in SYSTEMS})
        for d, c in keys
    ]  # fmt: skip


def _names(peer_version: str) -> dict[str, str]:
    return {"project": "this project", "massgen": f"MassGen {peer_version}"}


def _intro(pairs: int, warmed: bool, args_text: str, took: float) -> list[str]:
    return [
        "Both commands run a 3-agent question as a user runs it, as subprocesses, against one "
        f"scripted OpenAI-compatible fake on loopback ({TOKENS} pieces per response — answers, "
        "votes and the presentation alike — at 0 or 10 ms each). This project: "
        "`.venv/bin/massgen --config team.yaml --embedded --output json Q` (a private embedded "
        "stack: nats-server, orchestrator, worker). MassGen: `massgen --config team.yaml "
        "--automation --no-session-registry Q` from its own venv (`.bench/massgen-venv`). "
        "Same team file (three `chatcompletion` agents, `base_url` = the fake), fresh cwd and "
        "`HOME` per run. *same answer*: the three agents give one answer, then vote for agent1. "
        "*disagree once*: the first answers differ (agent3: Sydney); on seeing another answer "
        "agent3 answers once more (Canberra after all), then all vote for agent1.",
        "",
        f"{pairs} alternating pair(s) per cell"
        + (" after one untimed warm-up run of each" if warmed else " (no warm-up run)")
        + "; medians of the completed runs. CPU = user + sys of the whole process tree; peak "
        "RSS = largest sampled sum over the live tree (largest single process in brackets); "
        "start-up = command start → first model request. The machine (2 cores) is shared, so "
        "compare the two systems within this table, not with other sections. Measured with "
        f"`.venv/bin/python bench/bench_vs_massgen.py{args_text}` ({took:.0f} s).",
    ]


def _figures(cells: list[Cell], names: dict[str, str]) -> list[str]:
    lines = [
        "| case | ms/token | system | runs ok | wall | CPU | peak RSS | model requests "
        "| start-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        for system in SYSTEMS:
            m = {k: cell.median(system, k) for k in METRICS}
            counts = "/".join(map(str, sorted({r.requests for r in cell.done(system)}))) or "–"
            lines.append(
                f"| {cell.title} | {cell.delay_ms} | {names[system]} | "
                f"{len(cell.done(system))}/{len(cell.runs[system])} | {_fmt(m['wall'], ' s')} | "
                f"{_fmt(m['cpu'], ' s')} | {_fmt(m['peak_tree_mb'], ' MB', 0)} "
                f"({_fmt(m['peak_single_mb'], ' MB', 0)}) | {_fmt(m['requests'], '', 0)} "
                f"({counts}) | {_fmt(m['startup'], ' s')} |"
            )
    lines += [
        "",
        "Ratios project / MassGen of the medians above (each pair's own wall ratio in "
        "brackets), and of the best (least) run of each:",
        "",
        "| case | ms/token | wall | wall, best runs | CPU | CPU, best runs | peak RSS "
        "| model requests | start-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        pairs = ", ".join(f"{x:.2f}" for x in cell.pair_wall_ratios()) or "–"
        lines.append(
            f"| {cell.title} | {cell.delay_ms} | {_fmt(cell.ratio('wall'), '×')} ({pairs}) | "
            f"{_fmt(cell.best_ratio('wall'), '×')} | {_fmt(cell.ratio('cpu'), '×')} | "
            f"{_fmt(cell.best_ratio('cpu'), '×')} | {_fmt(cell.ratio('peak_tree_mb'), '×')} | "
            f"{_fmt(cell.ratio('requests'), '×')} | {_fmt(cell.ratio('startup'), '×')} |"
        )
    return lines


def _targets(cells: list[Cell]) -> list[str]:
    lines = [
        "Targets are judged on the medians; the best runs' ratio is shown beside them.",
        "",
        "| target (issue 16) | case | ratio (medians) | best runs | |",
        "|---|---|---|---|---|",
    ]
    for delay_ms, metric, limit in TARGETS:
        for cell in cells:
            if cell.delay_ms != delay_ms:
                continue
            value = cell.ratio(metric)
            mark = "–" if value is None else ("✅" if value <= limit else "❌")
            lines.append(
                f"| {'wall' if metric == 'wall' else 'CPU'} ≤ {limit} × MassGen's at {delay_ms} "
                f"ms/token | {cell.title} | {_fmt(value, '×')} | "
                f"{_fmt(cell.best_ratio(metric), '×')} | {mark} |"
            )
    return lines


def _breakdown(cells: list[Cell], names: dict[str, str]) -> list[str]:
    lines = [
        "Where the wall time goes (medians): *ready* = command start → coordination starts "
        "(this project: its first `turn_started` event, *worker ready* = the worker's "
        "`worker_started` log line; MassGen: the start time in its `status.json`), "
        "*coordination* = → run finished (MassGen: its own `elapsed_seconds`), *after* = → "
        "command exited. Streaming alone takes 3 sequential responses (answer, vote, present) "
        f"× {TOKENS} pieces: {3 * TOKENS * 0.01:.1f} s at 10 ms; *disagree once* adds agent3's "
        "second answer.",
        "",
        "| case | ms/token | system | ready | worker ready | coordination | after |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        for system in SYSTEMS:
            ready, worker, coordination, after = (
                _fmt(cell.phase(system, key), " s")
                for key in ("ready", "worker_ready", "coordination", "after")
            )
            lines.append(
                f"| {cell.title} | {cell.delay_ms} | {names[system]} | {ready} | {worker} | "
                f"{coordination} | {after} |"
            )
    lines += [
        "",
        "Where the CPU goes: median CPU seconds per program of the process tree (sampled "
        "every 100 ms, so a little under the totals above):",
        "",
        "| case | ms/token | system | CPU per program |",
        "|---|---|---|---|",
    ]
    for cell in cells:
        for system in SYSTEMS:
            shown = ", ".join(
                f"`{name}` {value:.2f} s"
                for name, value in cell.cpu_by_program(system).items()
                if value >= 0.01
            )
            lines.append(f"| {cell.title} | {cell.delay_ms} | {names[system]} | {shown or '–'} |")
    return lines


def _problems(runs: list[Run]) -> list[str]:
    titles = {c.key: c.title for c in CASES}
    lines: list[str] = []
    failed = [r for r in runs if not r.ok]
    if failed:
        lines += ["", "Runs that did not complete:", ""]
        lines += [
            f"- {r.system}, {titles[r.case]}, {r.delay_ms} ms: {r.detail} "
            f"({r.wall:.1f} s, {r.requests} requests)"
            for r in failed
        ]
    strays = [r for r in runs if r.strays]
    if strays:
        lines += ["", "Processes left running after the command exited (ended by the bench):", ""]
        lines += [f"- {r.system}, {titles[r.case]}, {r.delay_ms} ms: {r.strays}" for r in strays]
    return lines


def report(
    runs: list[Run], pairs: int, warmed: bool, peer_version: str, args_text: str, took: float
) -> str:
    """The BENCHMARKS.md section (Markdown)."""
    cells, names = cells_of(runs), _names(peer_version)
    lines = [f"## Side by side: this project vs MassGen {peer_version}, same fake model", ""]
    lines += _intro(pairs, warmed, args_text, took) + [""]
    lines += _figures(cells, names) + [""]
    lines += _targets(cells) + [""]
    lines += _breakdown(cells, names)
    lines += _problems(runs)
    return "\n".join(lines)


def skipped(reason: str) -> str:
    return "\n".join([
        f"## Side by side: this project vs MassGen {MASSGEN_VERSION}, same fake model",
        "",
        f"**Skipped**: {reason}.",
        "",
        "`.venv/bin/python bench/bench_vs_massgen.py` installs MassGen into "
        "`.bench/massgen-venv` (its own venv, pinned by `bench/massgen_peer_requirements.txt`) "
        "and compares both commands on the same fake model.",
    ])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4,
                        help="alternating pairs per cell (even: each system goes first "
                             "equally often)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="one pair per cell and no warm-up (a smoke test)")  # fmt: skip
    parser.add_argument("--no-install", action="store_true",
                        help="use an installed MassGen only; skip when there is none")  # fmt: skip
    parser.add_argument("--massgen-venv", type=Path, default=DEFAULT_VENV,
                        help="MassGen's own virtualenv (created when missing)")  # fmt: skip
    parser.add_argument("--cases", default=",".join(c.key for c in CASES),
                        help="comma-separated: same, disagree")  # fmt: skip
    parser.add_argument("--delays", default=",".join(str(int(d * 1000)) for d in DELAYS),
                        help="comma-separated ms per token")  # fmt: skip
    args = parser.parse_args()
    pairs = 1 if args.quick else max(1, args.runs)
    args_text = "".join(
        [" --quick"] if args.quick else [f" --runs {pairs}"] if pairs != 4 else []
    ) + "".join(
        f" --{name} {value}"
        for name, value, default in (
            ("cases", args.cases, parser.get_default("cases")),
            ("delays", args.delays, parser.get_default("delays")),
        )
        if value != default
    )

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    try:
        peer = ensure_massgen(args.massgen_venv, install=not args.no_install, say=say)
    except PeerUnavailable as error:
        say(f"skipped: {error}")
        print(skipped(str(error)))
        return 0
    say(f"MassGen {peer.version} at {peer.executable}"
        + (" (installed now)" if peer.installed_now else " (reused)"))  # fmt: skip
    cases = [c for c in CASES if c.key in args.cases.split(",")]
    delays = [int(x) / 1000 for x in args.delays.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="massgen-bench-vs-"))
    index = 0
    if not args.quick:
        for system in ("project", "massgen"):
            warm = one_run(system, CASES[0], 0.0, scratch / "warmup", peer.executable, index)
            index += 1
            say(f"warm-up {system}: {warm.wall:.2f} s {'ok' if warm.ok else warm.detail}")
    runs: list[Run] = []
    for delay in delays:
        for case in cases:
            flip = False  # per cell: P M, M P, ... (balanced when the count is even)
            for _ in range(pairs):
                order = ("massgen", "project") if flip else ("project", "massgen")
                flip = not flip
                for system in order:
                    run = one_run(system, case, delay, scratch, peer.executable, index)
                    index += 1
                    runs.append(run)
                    say(
                        f"{case.key:8} {run.delay_ms:2d} ms {system:7}: {run.wall:6.2f} s wall "
                        f"{run.cpu:6.2f} s CPU {run.peak_tree_mb:5.0f} MB {run.requests:2d} req "
                        f"{'ok' if run.ok else 'FAILED ' + run.detail} {run.extra}"
                    )
    RAW.parent.mkdir(parents=True, exist_ok=True)
    if not (RAW.parent / ".gitignore").exists():
        (RAW.parent / ".gitignore").write_text("# benchmark scratch: never committed\n*\n")
    RAW.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    if all(r.ok for r in runs):
        shutil.rmtree(scratch, ignore_errors=True)
        say(f"raw figures: {RAW}")
    else:
        say(f"raw figures: {RAW}; run folders (kept: some runs failed): {scratch}")
    print(report(runs, pairs, not args.quick, peer.version, args_text, time.monotonic() - started))
    return 0 if any(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

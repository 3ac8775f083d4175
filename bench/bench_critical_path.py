"""Benchmark: the real ``massgen`` command on a 3-agent run, against the fake model.

The fake model streams 200 words per response at 10 ms per word, so a 3-agent run
has a critical path of 3 sequential LLM phases (answer, vote, present) of ~2 s each:
~6.0 s. The command runs N times (``massgen --config team.yaml --output json``);
per run and as a median:

- wall: command start -> exit (target <= 1.5 x 6.0 s);
- start-up: command start -> the first model request the fake receives (target <= 1.0 s
  cold, a stack of the command's own; <= 0.3 s warm, with ``massgen up`` running);
- coordination: first ``turn_started`` -> ``final_answer`` (target <= 1.05 x 6.0 s);
- CPU seconds of the whole process tree (``RUSAGE_CHILDREN`` deltas: the CLI, the
  nats-server and the worker, which the CLI waits for);
- peak RSS: the largest single process (``ru_maxrss``) and the sampled sum over the
  process tree (``/proc``, every 50 ms).

Start-up is then broken down by the steps every process of the stack notes in
``$MASSGEN_STARTUP_TRACE`` (``massgen_kit.runtime.mark``) and by imports timed in
isolation. Warm start-up: a stack started with ``massgen up`` (in a private
``MASSGEN_RUNTIME_DIR``), then the same command ``--warm-runs`` times on a fake that
answers at once. Every command runs with an empty ``MASSGEN_RUNTIME_DIR`` of its own
otherwise (a fresh one per cold run: no warm stack, no remembered config), so a warm
stack of the user's is never used.

    .venv/bin/python bench/bench_critical_path.py [--runs 3] [--warm-runs 5] [--update]

``--update`` also writes the section into BENCHMARKS.md (as ``run_all.py
critical_path`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)

from tests.support.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.support.fakes.serve import start_team  # noqa: E402

TOKENS, TOKEN_DELAY = 200, 0.01
STARTUP_COLD, STARTUP_WARM = 1.0, 0.3
"""Start-up targets (issue 16): command start -> first model request."""
CRITICAL_PATH = 6.0
"""3 sequential phases x 200 words x 10 ms."""
PAGE = os.sysconf("SC_PAGE_SIZE")
MASSGEN_OWN_CLI = {"wall": 10.6, "cpu": 5.1, "rss_mb": 214, "startup": 4.1}
"""MassGen's own CLI on the same run on this machine (from the issue)."""


def massgen_command() -> list[str]:
    script = Path(sys.executable).with_name("massgen")
    return [str(script)] if script.exists() else [sys.executable, "-m", "massgen_cli"]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants right now."""
    children = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            fields = Path(f"/proc/{pid}/statm").read_text().split()
            total += int(fields[1]) * PAGE
        except OSError:
            pass
    return total


def _iso(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _log_time(path: Path, event: str) -> float | None:
    """Epoch seconds of the first JSON log line with ``event`` in a service log."""
    if not path.exists():
        return None
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event and "timestamp" in record:
            return _iso(record["timestamp"])
    return None


def _env(runtime_dir: Path, trace: Path | None = None) -> dict[str, str]:
    env = dict(
        os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", MASSGEN_RUNTIME_DIR=str(runtime_dir)
    )
    env.pop("MASSGEN_NO_WARM", None)
    # The code the stack runs, pinned: an edit elsewhere in the tree during the benchmark
    # must not make the warm stack outdated (nor miss the remembered config).
    env["MASSGEN_CODE_FINGERPRINT"] = f"bench-critical-path-{os.getpid()}"
    if trace is not None:
        env["MASSGEN_STARTUP_TRACE"] = str(trace)
    return env


def _trace(path: Path, started: float) -> dict[str, float]:
    """Seconds after ``started`` of each step noted in a start-up trace (first time)."""
    steps: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            stamp, _pid, step = line.split(" ", 2)
            steps.setdefault(step, float(stamp) - started)
    return steps


def run_once(config: Path, log_root: Path, cwd: Path, fake: FakeOpenAIServer) -> dict:
    trace = cwd / f"trace-{time.time_ns()}.txt"
    # A state folder of its own: no warm stack, and no config remembered from a run before.
    env = _env(cwd / f"runtime-cold-{trace.stem}", trace)
    requests_before = len(fake.requests)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    proc = subprocess.Popen(
        [*massgen_command(), "--config", str(config), "--output", "json",
         "--log-dir", str(log_root), "What is the capital of Australia?"],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    finally:
        done.set()
        sampler.join()
    wall = time.time() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"massgen exited {proc.returncode}")
    result = json.loads(stdout)
    log_dir = Path(result["log_dir"])
    events = [json.loads(x) for x in (log_dir / "events.jsonl").read_text().splitlines()]
    first_turn = next(e["ts"] for e in events if e["kind"] == "turn_started")
    final = next(e["ts"] for e in events if e["kind"] == "final_answer")
    created = next(e["ts"] for e in events if e["kind"] == "run_created")
    first_chunk = next(e["ts"] for e in events if e["kind"] == "chunk")
    answers_done = max(e["ts"] for e in events if e["kind"] == "answer_accepted")
    votes_done = max(e["ts"] for e in events if e["kind"] == "vote_accepted")
    orchestrator_up = _log_time(log_dir / "services.log", "orchestrator.started")
    worker_up = _log_time(log_dir / "worker.log", "worker_started")
    requests = fake.requests[requests_before:]
    return {
        "status": result["status"],
        "wall": wall,
        "startup": requests[0].received_at - started,
        "steps": _trace(trace, started),
        "coordination": final - first_turn,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "maxrss_mb": after.ru_maxrss / 1024,
        "tree_rss_mb": peak[0] / 2**20,
        "orchestrator_up": (orchestrator_up - started) if orchestrator_up else None,
        "run_created": created - started,
        "worker_up": (worker_up - started) if worker_up else None,
        "first_turn": first_turn - started,
        "first_chunk": first_chunk - first_turn,
        "answer_phase": answers_done - first_turn,
        "vote_phase": votes_done - answers_done,
        "present_phase": final - votes_done,
        "shutdown": wall - (final - started),
    }


def warm_startups(folder: Path, runs: int) -> list[float]:
    """Start-up (command start -> first model request) of ``runs`` commands on a warm
    stack (``massgen up``), on a fake that answers at once."""
    fake = FakeOpenAIServer(token_delay=0.0, tokens=20).start()
    runtime = folder / "runtime-warm"
    env = _env(runtime)
    command = massgen_command()
    try:
        models = start_team(fake, 3, vote_for="agent1")
        config = folder / "team-warm.json"
        config.write_text(json.dumps({"agents": [
            {"id": f"agent-{m}", "backend": {"type": "chatcompletion", "model": m,
                                            "base_url": fake.base_url, "api_key": "sk-fake"}}
            for m in models
        ]}))  # fmt: skip
        up = [*command, "up", "--providers", "chatcompletion", "--idle", "600"]
        subprocess.run(up, env=env, cwd=folder, check=True, capture_output=True, timeout=120)
        startups = []
        for _ in range(runs):
            before = len(fake.requests)
            started = time.time()
            proc = subprocess.run(
                [*command, "--config", str(config), "--output", "json", "--log-dir",
                 str(folder / "logs-warm"), "What is the capital of Australia?"],
                env=env, cwd=folder, stdin=subprocess.DEVNULL, capture_output=True,
                text=True, timeout=120,
            )  # fmt: skip
            if proc.returncode != 0 or "using the warm stack" not in proc.stderr:
                raise RuntimeError(f"warm run failed or not warm: {proc.stderr[-500:]}")
            startups.append(fake.requests[before].received_at - started)
        return startups
    finally:
        subprocess.run([*command, "down"], env=env, cwd=folder, capture_output=True, timeout=60)
        fake.stop()


def timed_python(code: str, repeat: int = 2) -> float:
    """Best wall seconds of ``python -c code`` in a fresh interpreter."""
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
        best = min(best, time.perf_counter() - started)
    return best


def nats_ready_seconds() -> float:
    from massgen_cli.nats_server import NatsServer

    started = time.perf_counter()
    server = NatsServer().start()
    took = time.perf_counter() - started
    server.stop()
    return took


def _fmt(value: float | None, unit: str = "s") -> str:
    return "–" if value is None else f"{value:.2f} {unit}".rstrip()


def report(runs: list[dict], warm: list[float], isolated: dict[str, float]) -> str:
    med = {k: statistics.median(r[k] for r in runs) for k in
           ("wall", "startup", "coordination", "cpu", "tree_rss_mb")}  # fmt: skip
    warm_med = statistics.median(warm) if warm else None
    maxrss = max(r["maxrss_mb"] for r in runs)

    def mark(ok: bool) -> str:
        return "✅" if ok else "❌"

    lines = [
        "## Critical path: the `massgen` command, 3 agents, fake model",
        "",
        f"`massgen --config team.yaml --output json` as a subprocess, {len(runs)} runs; the fake "
        f"model (in the benchmark process) streams {TOKENS} words per response at "
        f"{TOKEN_DELAY * 1000:.0f} ms per word, so the critical path (answer, vote, present) "
        f"is ≈ {CRITICAL_PATH:.1f} s. Pieces are paced against the clock (piece k at "
        f"k × {TOKEN_DELAY * 1000:.0f} ms after the response starts, as a provider generating "
        "at a steady rate), and a tool call's own pieces count among the words.",
        "",
        "| run | status | wall | start-up | coordination | CPU (tree) | peak RSS (tree sum) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(
            f"| {i} | {r['status']} | {r['wall']:.2f} s | {r['startup']:.2f} s | "
            f"{r['coordination']:.2f} s | {r['cpu']:.2f} s | {r['tree_rss_mb']:.0f} MB |"
        )
    lines += [
        f"| **median** | | **{med['wall']:.2f} s** | **{med['startup']:.2f} s** | "
        f"**{med['coordination']:.2f} s** | **{med['cpu']:.2f} s** "
        f"| **{med['tree_rss_mb']:.0f} MB** |",
        "",
        "| target | value | |",
        "|---|---|---|",
        f"| wall ≤ 1.5 × {CRITICAL_PATH:.1f} s = {1.5 * CRITICAL_PATH:.1f} s "
        f"| {med['wall']:.2f} s "
        f"({med['wall'] / CRITICAL_PATH:.2f}×) | {mark(med['wall'] <= 1.5 * CRITICAL_PATH)} |",
        f"| start-up (→ first model request), cold ≤ {STARTUP_COLD} s | {med['startup']:.2f} s "
        f"| {mark(med['startup'] <= STARTUP_COLD)} |",
        f"| start-up, warm (`massgen up`) ≤ {STARTUP_WARM} s | {_fmt(warm_med)} "
        f"| {mark(warm_med is not None and warm_med <= STARTUP_WARM)} |",
        f"| coordination ≤ 1.05 × {CRITICAL_PATH:.1f} s = {1.05 * CRITICAL_PATH:.2f} s | "
        f"{med['coordination']:.2f} s | {mark(med['coordination'] <= 1.05 * CRITICAL_PATH)} |",
        "",
        f"Largest single process (`ru_maxrss` of children): {maxrss:.0f} MB.",
        "",
        f"MassGen's own CLI took {MASSGEN_OWN_CLI['wall']} s wall "
        f"({MASSGEN_OWN_CLI['wall'] / CRITICAL_PATH:.2f}×), {MASSGEN_OWN_CLI['cpu']} CPU-s and "
        f"{MASSGEN_OWN_CLI['rss_mb']} MB for the same run here, {MASSGEN_OWN_CLI['startup']} s of "
        f"it start-up; MassGen-on-NATS (median): {med['wall']:.1f} s wall "
        f"({med['wall'] / CRITICAL_PATH:.2f}×), {med['cpu']:.1f} CPU-s, "
        f"{med['tree_rss_mb']:.0f} MB (tree sum), {med['startup']:.1f} s start-up.",
        "",
        "Start-up is command start → the first model request the fake receives. Warm: "
        f"{len(warm)} commands on a stack started with `massgen up`: "
        + ", ".join(f"{x:.2f} s" for x in warm)
        + f" (median {_fmt(warm_med)}).",
        "",
        "### Where start-up goes",
        "",
        "Seconds after the command started, median over the runs, from the steps each "
        "process notes in `$MASSGEN_STARTUP_TRACE` (`cli:` the command, `worker:` the "
        "worker process it starts first):",
        "",
        "| step | at |",
        "|---|---|",
    ]
    steps: dict[str, list[float]] = {}
    for r in runs:
        for name, at in r["steps"].items():
            steps.setdefault(name, []).append(at)
    for name, at in sorted(steps.items(), key=lambda item: statistics.median(item[1])):
        lines.append(f"| {name} | {statistics.median(at):.2f} s |")
    lines += [
        f"| first model request | {med['startup']:.2f} s |",
        "",
        "From the run's own logs (`events.jsonl`, `services.log`, `worker.log`):",
        "",
        "| step | at |",
        "|---|---|",
    ]
    for key, what in (
        ("orchestrator_up", "orchestrator started (CLI imports, nats-server, orchestrator)"),
        ("run_created", "run created (`run_created` event)"),
        (
            "worker_up",
            "worker started (`worker_started`: spawned first by the CLI; python, its code "
            "(litellm only for providers that need it), connect)",
        ),
        ("first_turn", "first `turn_started`"),
    ):
        values = [r[key] for r in runs if r[key] is not None]
        lines.append(f"| {what} | {_fmt(statistics.median(values) if values else None)} |")
    lines += [
        "",
        "### Where coordination and the rest go (median)",
        "",
        "| phase | seconds | floor |",
        "|---|---|---|",
    ]
    floor = TOKENS * TOKEN_DELAY
    for key, what, least in (
        ("first_chunk", "first turn started → first streamed chunk", 0.0),
        ("answer_phase", "answer phase (first turn → last answer accepted)", floor),
        ("vote_phase", "vote phase (→ last vote accepted)", floor),
        ("present_phase", "presentation (→ final answer)", floor),
        ("shutdown", "final answer → command exited (stack stop)", 0.0),
    ):
        value = statistics.median(r[key] for r in runs)
        lines.append(f"| {what} | {value:.2f} | {least:.2f} |")
    lines += [
        "",
        "Timed in isolation (best of 2, fresh interpreter each):",
        "",
        "| step | seconds |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.2f} |" for name, value in isolated.items()]
    return "\n".join(lines)


def _update_section(body: str, took: float) -> None:
    """Replace this benchmark's section of BENCHMARKS.md (``run_all.py``'s format)."""
    out = ROOT / "BENCHMARKS.md"
    text = out.read_text(encoding="utf-8")
    start, end = "<!-- bench:critical_path -->\n", "<!-- /bench:critical_path -->\n"
    section = (
        f"{start}{body.rstrip()}\n\n_measured {time.strftime('%Y-%m-%d')} in {took:.0f} s_\n{end}"
    )
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section
    out.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warm-runs", type=int, default=5, help="commands on a warm stack")
    parser.add_argument(
        "--update", action="store_true", help="also write the section into BENCHMARKS.md"
    )
    args = parser.parse_args()
    begun = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="massgen-bench-critical-"))
    fake = FakeOpenAIServer(token_delay=TOKEN_DELAY, tokens=TOKENS).start()
    try:
        models = start_team(fake, 3, vote_for="agent1")
        config = folder / "team.json"
        config.write_text(json.dumps({"agents": [
            {"id": f"agent-{m}", "backend": {"type": "chatcompletion", "model": m,
                                            "base_url": fake.base_url, "api_key": "sk-fake"}}
            for m in models
        ]}))  # fmt: skip
        runs = [run_once(config, folder / "logs", folder, fake) for _ in range(args.runs)]
    finally:
        fake.stop()
    warm = warm_startups(folder, args.warm_runs) if args.warm_runs else []
    lean = (
        "from massgen_kit.runtime import import_lean\nimport_lean('structlog', 'nats', 'nats.js')\n"
    )
    isolated = {
        "python -c pass": timed_python("pass"),
        "import the CLI (`massgen_cli.main` and the question command)": timed_python(
            "import massgen_cli.main, massgen_cli.commands.ask"
        ),
        "import the config models (`massgen_proto.config`: validating a team)": timed_python(
            "import massgen_proto.config"
        ),
        "import the in-process stack (nats-py and structlog lean, the orchestrator)": (
            timed_python(lean + "import massgen_cli.embedded, massgen_orchestrator.service")
        ),
        "load the worker's code as it does (`_load_code`: GC paused, lean imports)": (
            timed_python("from massgen_worker.__main__ import _load_code\n_load_code()")
        ),
        "the worker's direct model path readied (`apreload()`: TLS context, warm-up call)": (
            timed_python(
                "import asyncio\nfrom massgen_worker.__main__ import _load_code\n_load_code()\n"
                "from massgen_worker.llm import apreload\nasyncio.run(apreload())"
            )
        ),
        "`import litellm` alone (only for providers that need it, in the background)": (
            timed_python("import litellm")
        ),
        "nats-server start until it accepts connections": nats_ready_seconds(),
    }
    text = report(runs, warm, isolated)
    print(text)
    if args.update:
        _update_section(text, time.monotonic() - begun)
    return 0 if all(r["status"] == "completed" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

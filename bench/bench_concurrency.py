"""Benchmark: 1000 concurrent 3-agent runs through one orchestrator process, and
through three.

A nats-server (JetStream on disk), the orchestrator process(es) (``python -m
massgen_orchestrator``), two worker processes (``--concurrency 64`` each) and the fake
model in a process of its own (``tests/support/fakes/serve.py``: 5 words per response, no
delay). One NATS connection submits every run at once (``follow_run`` under
``asyncio.gather``) and follows each to its ``run_finished`` event.

Reported per topology: completed / not completed / lost runs (target: 0 lost), total
time, runs per second, orchestrator CPU per run = (the utime+stime of every
orchestrator process from /proc, after - before) / runs (target: at most 50 ms), and
NATS messages per run (the server's ``in_msgs`` / ``out_msgs`` from its monitoring
endpoint, after - before, / runs).

    .venv/bin/python bench/bench_concurrency.py [--runs 1000] [--orchestrators 1,3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import nats
from massgen_cli.client import follow_run
from massgen_cli.nats_server import NatsServer

ROOT = Path(__file__).resolve().parents[1]
TARGET_CPU_MS = 50.0
RUN_TIMEOUT = 900.0
"""A run not finished this long after its submission is counted lost (a dropped turn
would hold it for the 600 s turn timeout; 1000 runs at a few per second take minutes)."""
READY_TIMEOUT = 180.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def team(base_url: str) -> dict:
    return {
        "agents": [
            {
                "id": f"a{i}",
                "backend": {
                    "type": "chatcompletion",
                    "model": f"m{i}",
                    "base_url": base_url,
                    "api_key": "sk-fake",
                },
            }
            for i in (1, 2, 3)
        ]
    }


class Processes:
    """Child processes started by this benchmark; all stopped by ``stop()``."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, *command: str, **kwargs) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, *command],
            stdin=kwargs.pop("stdin", subprocess.DEVNULL),
            stdout=kwargs.pop("stdout", log),
            stderr=log,
            env=self.env,
            **kwargs,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def one_run(nc, index: int, config: dict) -> str:
    """Status of one run: its final status, or 'lost: <why>' when it never finished."""
    try:
        summary = await asyncio.wait_for(
            follow_run(nc, f"Question {index}: the capital of Australia?", config, lambda e: None,
                       request_timeout=60.0),
            RUN_TIMEOUT,
        )  # fmt: skip
    except TimeoutError:
        return "lost: no run_finished in time"
    except Exception as error:  # noqa: BLE001 - counted, reported
        return f"lost: {type(error).__name__}: {error}"
    return summary.status


def nats_messages(monitor: str) -> tuple[int, int]:
    """(in_msgs, out_msgs) of the server so far."""
    with urllib.request.urlopen(f"{monitor}/varz", timeout=5) as response:
        varz = json.load(response)
    return int(varz["in_msgs"]), int(varz["out_msgs"])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def bench(runs: int, workers: int, concurrency: int, orchestrators: int = 1) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="massgen-bench-concurrency-"))
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")
    procs = Processes(folder, env)
    monitor_port = free_port()
    monitor = f"http://127.0.0.1:{monitor_port}"
    server = NatsServer(
        store_dir=folder / "jetstream", extra_args=["-m", str(monitor_port)]
    ).start()
    try:
        fake = procs.start(
            "fake", "-m", "tests.support.fakes.serve", "--tokens", "5", "--team", "3",
            "--exit-on-eof", stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        base_url = json.loads(fake.stdout.readline())["base_url"]
        replicas = [
            procs.start(
                f"orchestrator{i + 1}",
                "-m",
                "massgen_orchestrator",
                "--nats",
                server.url,
                "--log-level",
                "warning",
            )  # fmt: skip
            for i in range(orchestrators)
        ]
        for i in range(workers):
            procs.start(
                f"worker{i + 1}", "-m", "massgen_worker", "--nats", server.url,
                "--providers", "chatcompletion", "--concurrency", str(concurrency),
                "--name", f"bench-worker-{i + 1}",
            )  # fmt: skip
        await wait_until(
            lambda: all("worker_started" in procs.log(f"worker{i + 1}") for i in range(workers)),
            READY_TIMEOUT,
            "workers",
        )
        config = team(base_url)
        nc = await nats.connect(server.url, name="bench-concurrency")
        try:
            # The warm-up also proves the orchestrators are up (no responders: not yet).
            deadline = time.monotonic() + READY_TIMEOUT
            while "NoResponders" in (warm := await one_run(nc, 0, config)):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            if warm != "completed":
                raise RuntimeError(f"warm-up run ended {warm!r}")
            cpu_before = sum(cpu_seconds(p.pid) for p in replicas)
            msgs_before = nats_messages(monitor)
            started = time.monotonic()
            statuses = await asyncio.gather(*(one_run(nc, i + 1, config) for i in range(runs)))
            took = time.monotonic() - started
            cpu_after = sum(cpu_seconds(p.pid) for p in replicas)
            msgs_after = nats_messages(monitor)
        finally:
            await nc.drain()
    finally:
        procs.stop()
        server.stop()
    counts = Counter(s if not s.startswith("lost") else "lost" for s in statuses)
    return {
        "runs": runs,
        "orchestrators": orchestrators,
        "msgs_in_per_run": (msgs_after[0] - msgs_before[0]) / runs,
        "msgs_out_per_run": (msgs_after[1] - msgs_before[1]) / runs,
        "workers": workers,
        "concurrency": concurrency,
        "completed": counts.get("completed", 0),
        "lost": counts.get("lost", 0),
        "other": {k: v for k, v in counts.items() if k not in ("completed", "lost")},
        "lost_reasons": sorted({s for s in statuses if s.startswith("lost")})[:5],
        "seconds": took,
        "cpu_ms_per_run": (cpu_after - cpu_before) * 1000 / runs,
    }


def report(results: list[dict]) -> str:
    first = results[0]
    lines = [
        f"## Concurrency: {first['runs']} runs at once through one orchestrator process, "
        "and through three",
        "",
        f"nats-server (JetStream on disk), `python -m massgen_orchestrator` ×N, "
        f"{first['workers']} worker processes (`--concurrency {first['concurrency']}`), fake "
        "model in its own process (5 words per response, no delay). One connection submits "
        "every run at once (`follow_run` under `asyncio.gather`); 3 agents per run. CPU is "
        "the orchestrator processes' together; NATS messages are the server's in / out "
        "counts (turn requests, reports and replies, events, KV writes, acks...).",
        "",
        "| orchestrators | runs | completed | lost | other | time | runs/s "
        "| orchestrator CPU per run (all replicas) | per replica | capacity, a core each "
        "| NATS msgs per run (in / out) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ok = "✅" if r["cpu_ms_per_run"] <= TARGET_CPU_MS else "❌"
        lost_ok = "✅" if r["lost"] == 0 else "❌"
        per_replica = r["cpu_ms_per_run"] / r["orchestrators"]
        lines.append(
            f"| {r['orchestrators']} | {r['runs']} | {r['completed']} | {r['lost']} {lost_ok} "
            f"| {r['other'] or 0} | {r['seconds']:.1f} s | {r['runs'] / r['seconds']:.2f} "
            f"| {r['cpu_ms_per_run']:.1f} ms {ok} | {per_replica:.1f} ms "
            f"| {1000 / per_replica:.0f} runs/s "
            f"| {r['msgs_in_per_run']:.0f} / {r['msgs_out_per_run']:.0f} |"
        )
    lines += [
        "",
        f"Targets: 0 lost; orchestrator CPU per run ≤ {TARGET_CPU_MS:.0f} ms. Each replica "
        "handles the runs it created (a turn's reports go back to the replica that "
        "published it) and only watches the others' summaries, so the CPU a run costs "
        'each replica falls as replicas are added. "Capacity, a core each" is 1000 / '
        "(per-replica ms per run): the orchestrators' runs/s if each replica had a core "
        "of its own. The time and runs/s columns are this 2-core machine's, where the "
        "replicas, workers, fake model and nats-server share two cores.",
    ]
    for r in results:
        if r["lost_reasons"]:
            lines += ["", f"Lost runs ({r['orchestrators']}): " + "; ".join(r["lost_reasons"])]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--orchestrators", default="1,3", help="replica counts, e.g. 1,3")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    results = [
        asyncio.run(bench(args.runs, args.workers, args.concurrency, int(n)))
        for n in args.orchestrators.split(",")
    ]
    print(report(results))
    return 0 if all(r["lost"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

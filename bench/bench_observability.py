"""What metrics and traces cost: CPU per run with each switched off and on.

The orchestrator and a worker run in this process on a real nats-server;
the fake model (``tests/fakes/serve.py``, 5 words per response, no delay) and an OTLP
sink (accepts and drops what exporters send) run in processes of their own. Each round
runs ``--runs`` 3-agent runs (10 at a time) in three modes, in turn:

- **bare**: metric updates replaced by no-ops, tracing off;
- **metrics**: as shipped (metrics on, tracing off: the default);
- **metrics + traces**: tracing on, spans batched and exported over OTLP/HTTP to the sink.

This process's CPU (``time.process_time``) per run is what the services spent. Rounds
alternate the modes so machine noise falls on all of them; medians are reported.
Target: metrics and traces together add at most 5 % of a run's CPU.

    .venv/bin/python bench/bench_observability.py [--runs 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nats
from massgen_cli.client import follow_run
from massgen_cli.nats_server import NatsServer
from massgen_kit import metrics, tracing
from massgen_orchestrator.service import OrchestratorService
from massgen_orchestrator.settings import OrchestratorSettings
from massgen_worker.service import WorkerService
from massgen_worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.05


_SINK = """
import sys

class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def otlp_sink() -> tuple[str, subprocess.Popen]:
    """An OTLP/HTTP endpoint that accepts and drops spans, in a process of its own (its
    CPU is not the services')."""
    proc = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    return f"http://127.0.0.1:{proc.stdout.readline().strip()}", proc


@contextlib.contextmanager
def metrics_off():
    saved = {
        cls: {name: getattr(cls, name) for name in ("inc", "add", "set", "observe")
              if hasattr(cls, name)}
        for cls in (metrics.Counter, metrics.Gauge, metrics.Histogram)
    }  # fmt: skip
    for cls, methods in saved.items():
        for name in methods:
            setattr(cls, name, lambda self, *a, **k: None)
    try:
        yield
    finally:
        for cls, methods in saved.items():
            for name, method in methods.items():
                setattr(cls, name, method)


def team(base_url: str) -> dict:
    return {"agents": [
        {"id": f"a{i}", "backend": {"type": "chatcompletion", "model": f"m{i}",
                                    "base_url": base_url, "api_key": "sk-fake"}}
        for i in (1, 2, 3)
    ]}  # fmt: skip


async def runs(nc, config: dict, count: int) -> float:
    """CPU seconds of this process per run over ``count`` runs (10 at a time)."""
    started = time.process_time()
    for first in range(0, count, 10):
        batch = range(first, min(count, first + 10))
        done = await asyncio.gather(*(
            follow_run(nc, f"Q{i}: capital of Australia?", config, lambda e: None)
            for i in batch
        ))  # fmt: skip
        assert all(s.status == "completed" for s in done), [s.status for s in done]
    return (time.process_time() - started) / count


async def bench(count: int, rounds: int) -> dict[str, list[float]]:
    server = NatsServer().start()
    fake = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, str(ROOT / "tests" / "fakes" / "serve.py"), "--tokens", "5",
         "--team", "3", "--exit-on-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    endpoint, sink = otlp_sink()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    results: dict[str, list[float]] = {"bare": [], "metrics": [], "metrics + traces": []}
    try:
        config = team(json.loads(fake.stdout.readline())["base_url"])
        orchestrator = OrchestratorService(
            OrchestratorSettings(nats_url=server.url, memory_streams=True)
        )
        await orchestrator.start()
        worker = WorkerService(server.url, ["chatcompletion"], WorkerSettings(concurrency=32))
        await worker.start()
        nc = await nats.connect(server.url)
        await runs(nc, config, 10)  # warm-up: imports, first calls
        for _ in range(rounds):
            with metrics_off():
                results["bare"].append(await runs(nc, config, count))
            results["metrics"].append(await runs(nc, config, count))
            tracing.configure("massgen-bench")
            results["metrics + traces"].append(await runs(nc, config, count))
            tracing.install(None)
        await nc.drain()
        await worker.stop()
        await orchestrator.stop()
    finally:
        fake.stdin.close()
        fake.wait(10)
        sink.terminate()
        sink.wait(10)
        server.stop()
    return results


def report(results: dict[str, list[float]], count: int, rounds: int) -> str:
    bare = statistics.median(results["bare"])
    lines = [
        "## Observability: CPU added per run by metrics and by traces",
        "",
        "Orchestrator and worker in one process on a real nats-server; the fake "
        "model (5 words per response) and an OTLP/HTTP sink outside it. "
        f"{rounds} rounds of {count} 3-agent runs per mode, modes alternating; medians of "
        "this process's CPU per run.",
        "",
        "| mode | CPU per run | added vs bare |",
        "|---|---|---|",
    ]
    for mode, values in results.items():
        value = statistics.median(values)
        lines.append(f"| {mode} | {value * 1000:.1f} ms | {(value - bare) / bare:+.1%} |")
    total = (statistics.median(results["metrics + traces"]) - bare) / bare
    mark = "✅" if total <= TARGET else "❌"
    lines += ["", f"Target: metrics and traces together ≤ +{TARGET:.0%} — {total:+.1%} {mark}."]
    return "\n".join(lines)


def main() -> int:
    from massgen_kit.logsetup import configure_logging

    configure_logging("warning")  # as a deployment logs: no per-turn lines in the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = asyncio.run(bench(args.runs, args.rounds))
    print(report(results, args.runs, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

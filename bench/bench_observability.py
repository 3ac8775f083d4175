"""What metrics and traces cost: CPU per run with each switched off and on.

The orchestrator and a worker run in this process on a real nats-server;
the fake model (``tests/support/fakes/serve.py``, 5 words per response, no delay) and an OTLP
sink (accepts and drops what exporters send) run in processes of their own. Each round
runs ``--runs`` 3-agent runs (10 at a time) in four modes:

- **bare**: metric updates replaced by no-ops, tracing off;
- **metrics**: as shipped (metrics on, tracing off: the default);
- **metrics + traces**: tracing on (``tracing.configure``, every span sampled), spans
  batched and exported over OTLP/HTTP to the sink; the spans still queued are flushed
  before the block's CPU is read, so the exporter's work counts;
- **metrics + traces, 10 % of runs sampled**: the same with the SDK's standard
  ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` and ``OTEL_TRACES_SAMPLER_ARG=0.1``
  (a run is traced whole or not at all).

This process's CPU (``time.process_time``, every thread) per run is what the services
spent. The modes' order rotates from round to round and garbage is collected before
each block, so drift and machine noise fall on all of them; a mode's cost is the median
over rounds of its CPU relative to the same round's bare block.
Target: metrics and traces together add at most 5 % of a run's CPU.

    .venv/bin/python bench/bench_observability.py [--runs 10] [--rounds 15] [--write]

``--write`` replaces the section in BENCHMARKS.md (``bench/run_all.py observability``
does the same).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats
from massgen_cli.client import follow_run
from massgen_cli.nats_server import NatsServer
from massgen_kit import metrics, tracing
from massgen_orchestrator.service import OrchestratorService
from massgen_orchestrator.settings import OrchestratorSettings
from massgen_worker.service import WorkerService
from massgen_worker.settings import WorkerSettings
from opentelemetry.sdk.trace import SpanProcessor

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.05


_SINK = """
from http.server import BaseHTTPRequestHandler, HTTPServer

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
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        proc.kill()
        raise RuntimeError("the OTLP sink did not start")
    return f"http://127.0.0.1:{port}", proc


class SpanCounter(SpanProcessor):
    """Counts the spans ended (to report spans per run)."""

    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span) -> None:
        self.ended += 1


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


TRACED = "metrics + traces"
SAMPLED = "metrics + traces, 10 % of runs sampled"
MODES = ("bare", "metrics", TRACED, SAMPLED)
SAMPLE_RATIO = 0.1


async def block(nc, config: dict, count: int, mode: str, providers: dict[str, Any]) -> float:
    """CPU seconds per run of one block of ``count`` runs in ``mode``; ``providers`` are
    the tracer providers of the traced modes."""
    gc.collect()
    if mode == "bare":
        with metrics_off():
            return await runs(nc, config, count)
    if mode == "metrics":
        return await runs(nc, config, count)
    tracing.install(providers[mode])
    started = time.process_time()
    await runs(nc, config, count)
    tracing.flush()  # the exporter's work on these runs' spans counts
    spent = (time.process_time() - started) / count
    tracing.install(None)
    return spent


async def bench(count: int, rounds: int) -> tuple[dict[str, list[float]], float]:
    """CPU per run of each mode in each round, and the spans per traced run."""
    server = NatsServer().start()
    fake = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, "-m", "tests.support.fakes.serve", "--tokens", "5",
         "--team", "3", "--exit-on-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    endpoint, sink = otlp_sink()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        config = team(json.loads(fake.stdout.readline())["base_url"])
        orchestrator = OrchestratorService(
            OrchestratorSettings(nats_url=server.url, memory_streams=True)
        )
        await orchestrator.start()
        worker = WorkerService(server.url, ["chatcompletion"], WorkerSettings(concurrency=32))
        await worker.start()
        nc = await nats.connect(server.url)
        # Tracing as a deployment has it: the OTLP exporter, batched; one provider,
        # switched on for the traced blocks only.
        tracing.configure("massgen-bench")
        providers = {TRACED: tracing._provider}
        counter = SpanCounter()
        providers[TRACED].add_span_processor(counter)
        # The same with the SDK's standard sampler variables: whole runs kept or left.
        os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        os.environ["OTEL_TRACES_SAMPLER_ARG"] = str(SAMPLE_RATIO)
        tracing.configure("massgen-bench")
        providers[SAMPLED] = tracing._provider
        del os.environ["OTEL_TRACES_SAMPLER"], os.environ["OTEL_TRACES_SAMPLER_ARG"]
        tracing.install(None)
        await runs(nc, config, 10)  # warm-up: imports, first calls
        for mode in (TRACED, SAMPLED):
            await block(nc, config, 10, mode, providers)  # and tracing's
        counter.ended = 0
        for round_ in range(rounds):
            for i in range(len(MODES)):
                mode = MODES[(round_ + i) % len(MODES)]
                results[mode].append(await block(nc, config, count, mode, providers))
        for provider in providers.values():
            provider.shutdown()
        await nc.drain()
        await worker.stop()
        await orchestrator.stop()
    finally:
        fake.stdin.close()
        fake.wait(10)
        sink.terminate()
        sink.wait(10)
        server.stop()
    return results, counter.ended / (count * rounds)


def ratios(results: dict[str, list[float]], mode: str) -> list[float]:
    """``mode``'s CPU in each round relative to the same round's bare block, minus 1."""
    return [m / b - 1 for m, b in zip(results[mode], results["bare"], strict=True)]


def added(results: dict[str, list[float]], mode: str) -> float:
    """The median over rounds of ``mode``'s CPU relative to the same round's bare block."""
    return statistics.median(ratios(results, mode))


def spread(results: dict[str, list[float]], mode: str) -> tuple[float, float]:
    """The quartiles of ``mode``'s relative CPU over rounds: the middle half of the rounds
    lies between them (how much the machine's noise moves one round)."""
    values = ratios(results, mode)
    if len(values) < 2:
        return values[0], values[0]
    low, _, high = statistics.quantiles(values, n=4)
    return low, high


def report(results: dict[str, list[float]], count: int, rounds: int, spans: float) -> str:
    lines = [
        "## Observability: CPU added per run by metrics and by traces",
        "",
        "Orchestrator and worker in one process on a real nats-server; the fake "
        "model (5 words per response) and an OTLP/HTTP sink outside it. "
        f"{rounds} rounds of {count} 3-agent runs per mode, the modes' order rotating; "
        "this process's CPU per run (every thread: the span exporter's too). *Added* is "
        "the median over rounds of a mode's CPU relative to the same round's bare block.",
        "",
        "| mode | CPU per run (median) | added vs bare | middle half of the rounds |",
        "|---|---|---|---|",
    ]
    for mode, values in results.items():
        low, high = spread(results, mode)
        lines.append(
            f"| {mode} | {statistics.median(values) * 1000:.1f} ms | {added(results, mode):+.1%} "
            f"| {low:+.1%} … {high:+.1%} |"
        )
    total, sampled = added(results, TRACED), added(results, SAMPLED)
    lines += [
        "",
        f"Target: metrics and traces together ≤ +{TARGET:.0%} — every run traced: "
        f"{total:+.1%} {'✅' if total <= TARGET else '❌'}; "
        f"{SAMPLE_RATIO:.0%} of runs traced: {sampled:+.1%} "
        f"{'✅' if sampled <= TARGET else '❌'}. Spans per traced run: {spans:.1f}.",
        "",
        f"Command: `python bench/bench_observability.py --runs {count} --rounds {rounds}"
        " --write`. These runs are tiny (5-word responses over the direct HTTP path), so "
        "the spans of a run weigh heavily; with real responses a run's CPU is larger and "
        "the share smaller, and `OTEL_TRACES_SAMPLER=parentbased_traceidratio` with "
        "`OTEL_TRACES_SAMPLER_ARG` (the SDK's standard variables) keeps a share of the "
        "runs, each whole: a run the sampler leaves out makes no spans at all and carries "
        "no trace context past its first hop.",
    ]
    return "\n".join(lines)


def write_section(body: str, took: float) -> None:
    """Replace this benchmark's section of BENCHMARKS.md (as ``run_all.py`` writes it)."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8")
    start, end = "<!-- bench:observability -->\n", "<!-- /bench:observability -->\n"
    section = f"{start}{body}\n\n_measured {time.strftime('%Y-%m-%d')} in {took:.0f} s_\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main() -> int:
    from massgen_kit.logsetup import configure_logging

    configure_logging("warning")  # as a deployment logs: no per-turn lines in the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per block (default 10)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    args = parser.parse_args()
    started = time.monotonic()
    results, spans = asyncio.run(bench(args.runs, args.rounds))
    body = report(results, args.runs, args.rounds, spans)
    print(body)
    if args.write:
        write_section(body, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

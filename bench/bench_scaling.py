"""Horizontal scaling of one provider's workers, and run resumption after a crash.

Runs the local cluster stand-in (scripts/cluster.py: 3 NATS nodes, services as
processes) against the fake model with a fixed latency per response, and prints a
Markdown section:

1. completed turns per second with 1, 2 and 4 workers of one provider, each worker
   with concurrency 1 so throughput is bound by model latency, not CPU;
2. how long a run waits after its only orchestrator is killed (SIGKILL) until the
   restarted replica, resuming from the KV bucket, moves it on; and with two
   replicas, how long the run is held up when one of them dies.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

import nats  # noqa: E402
from cluster import Cluster  # noqa: E402
from fakes.openai_server import FakeOpenAIServer  # noqa: E402
from fakes.serve import start_team  # noqa: E402
from massgen_proto import subjects  # noqa: E402
from massgen_proto.messages import CreateRun  # noqa: E402

PIECE_DELAY = 0.05
PIECES = 6  # ~0.3 s per model response (fixed latency)
RUNS_PER_WORKER = 6  # single-agent runs: answer, vote, present = 3 turns each


def _config(base_url: str) -> dict:
    return {
        "agent": {
            "id": "a1",
            "backend": {
                "type": "chatcompletion",
                "model": "m1",
                "base_url": base_url,
                "api_key": "sk-fake",
            },
        }
    }


async def _wait_done(kv, run_ids: list[str], limit: float = 300) -> None:
    import json

    pending = set(run_ids)
    deadline = time.monotonic() + limit
    while pending and time.monotonic() < deadline:
        for run_id in list(pending):
            try:
                state = json.loads((await kv.get(run_id)).value)
            except Exception:
                continue
            if state["status"] in {"completed", "failed", "timed_out", "cancelled"}:
                pending.discard(run_id)
        await asyncio.sleep(0.1)
    if pending:
        raise RuntimeError(f"{len(pending)} runs did not finish")


async def _throughput(cluster: Cluster, fake: FakeOpenAIServer, workers: int) -> float:
    nc = await nats.connect(cluster.url_for("api"))
    kv = await nc.jetstream().key_value(subjects.RUNS_BUCKET)
    count = RUNS_PER_WORKER * workers
    run_ids = [f"scale{workers}-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    before = len(fake.requests)
    started = time.monotonic()
    for run_id in run_ids:
        request = CreateRun(run_id=run_id, question="capital?", config=_config(fake.base_url))
        await nc.request(subjects.SUBMIT_CREATE, request.model_dump_json().encode(), timeout=10)
    await _wait_done(kv, run_ids)
    elapsed = time.monotonic() - started
    await nc.drain()
    return (len(fake.requests) - before) / elapsed


async def _resume(cluster: Cluster, fake: FakeOpenAIServer, restart: bool) -> float:
    """Seconds from the kill of orchestrator-1 to the run's next event."""
    nc = await nats.connect(cluster.url_for("api"), max_reconnect_attempts=-1)
    run_id = f"resume-{uuid.uuid4().hex[:6]}"
    events: list[float] = []
    turn_started = asyncio.Event()
    after_kill = asyncio.Event()
    killed = float("inf")

    async def on_event(msg) -> None:
        events.append(time.monotonic())
        if b'"turn_started"' in msg.data:
            turn_started.set()
        if events[-1] > killed:
            after_kill.set()

    await nc.subscribe(subjects.events_subject(run_id), cb=on_event)
    request = CreateRun(run_id=run_id, question="capital?", config=_config(fake.base_url))
    await nc.request(subjects.SUBMIT_CREATE, request.model_dump_json().encode(), timeout=10)
    await asyncio.wait_for(turn_started.wait(), 30)
    killed = time.monotonic()
    cluster.kill("orchestrator-1")
    if restart:
        await asyncio.get_running_loop().run_in_executor(None, cluster.restart, "orchestrator-1")
    await asyncio.wait_for(after_kill.wait(), 120)
    resumed = min(t for t in events if t > killed) - killed
    kv = await nc.jetstream().key_value(subjects.RUNS_BUCKET)
    await _wait_done(kv, [run_id])
    await nc.drain()
    if not restart:
        await asyncio.get_running_loop().run_in_executor(None, cluster.restart, "orchestrator-1")
    return resumed


def main() -> int:
    fake = FakeOpenAIServer(token_delay=PIECE_DELAY, tokens=PIECES).start()
    start_team(fake, 1)
    rates: dict[int, float] = {}
    resume: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        cluster = Cluster(
            Path(folder) / "scale", ["chatcompletion"], workers_per_provider=4, orchestrators=1,
            worker_concurrency=1, stream_replicas=3, with_extras=False,
        ).up(timeout=180)  # fmt: skip
        try:
            asyncio.run(_throughput(cluster, fake, 1))  # warm-up: first litellm calls
            for workers in (4, 2, 1):
                keep = {f"worker-chatcompletion-{i}" for i in range(1, workers + 1)}
                for name in [n for n, p in cluster.procs.items() if p.kind == "worker"]:
                    if name not in keep:
                        cluster.stop_one(name)
                rates[workers] = asyncio.run(_throughput(cluster, fake, workers))
            resume["1 replica, killed and restarted"] = asyncio.run(_resume(cluster, fake, True))
        finally:
            cluster.down()
        cluster = Cluster(
            Path(folder) / "resume", ["chatcompletion"], workers_per_provider=1, orchestrators=2,
            worker_concurrency=1, stream_replicas=3, with_extras=False,
        ).up(timeout=180)  # fmt: skip
        try:
            resume["2 replicas, one killed"] = asyncio.run(_resume(cluster, fake, False))
        finally:
            cluster.down()
    fake.stop()
    response = PIECE_DELAY * PIECES
    print("## Scaling workers of one provider (local 3-node cluster stand-in)\n")
    print(
        f"Fake model: {response:.2f} s per response; single-agent runs (3 turns each); "
        "worker concurrency 1, so throughput is latency-bound; streams with 3 replicas.\n"
    )
    print("| workers | turns/s | speed-up vs 1 |")
    print("|---|---|---|")
    for workers in (1, 2, 4):
        print(f"| {workers} | {rates[workers]:.2f} | {rates[workers] / rates[1]:.2f}x |")
    print("\n## Run resumption after an orchestrator crash (SIGKILL)\n")
    print("| setup | kill → run's next event |")
    print("|---|---|")
    for setup, seconds in resume.items():
        print(f"| {setup} | {seconds:.2f} s |")
    print(
        "\nWith one replica the figure includes the process restart (Python start, "
        "connect, resume open runs from the KV bucket); with two, the survivor answers "
        "the worker's retried report at once."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

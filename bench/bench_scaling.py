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
if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)

import nats  # noqa: E402
from massgen_proto import subjects  # noqa: E402
from massgen_proto.messages import CreateRun  # noqa: E402

from scripts.cluster import Cluster  # noqa: E402
from tests.support.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.support.fakes.serve import start_team  # noqa: E402

PIECE_DELAY = 0.05
PIECES = 16  # 0.8 s per model response, whatever its kind (a tool call's pieces count)
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
    nc = await nats.connect(**cluster.connect_options("api"))
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


_WORKER_EVENTS = (b'"kind":"chunk"', b'"kind":"token_usage"')


async def _resume(
    cluster: Cluster, fake: FakeOpenAIServer, restart: bool
) -> tuple[float, float, float | None]:
    """Kill orchestrator-1 while a turn streams. Returns seconds from the kill to the
    run's next orchestrator event, seconds of that the turn was still streaming, and
    (with ``restart``) seconds until the restarted replica was ready."""
    nc = await nats.connect(max_reconnect_attempts=-1, **cluster.connect_options("api"))
    run_id = f"resume-{uuid.uuid4().hex[:6]}"
    streaming = asyncio.Event()
    moved_on = asyncio.Event()
    killed = float("inf")
    stream_started = next_event = 0.0
    back = None

    async def on_event(msg) -> None:
        nonlocal stream_started, next_event
        now = time.monotonic()
        if b'"kind":"chunk"' in msg.data and not streaming.is_set():
            stream_started = now
            streaming.set()
        elif now > killed and not any(kind in msg.data for kind in _WORKER_EVENTS):
            next_event = next_event or now
            moved_on.set()

    await nc.subscribe(subjects.events_filter(run_id), cb=on_event)
    request = CreateRun(run_id=run_id, question="capital?", config=_config(fake.base_url))
    await nc.request(subjects.SUBMIT_CREATE, request.model_dump_json().encode(), timeout=10)
    await asyncio.wait_for(streaming.wait(), 30)
    killed = time.monotonic()
    cluster.kill("orchestrator-1")
    if restart:
        await asyncio.get_running_loop().run_in_executor(None, cluster.restart, "orchestrator-1")
        back = time.monotonic() - killed
    await asyncio.wait_for(moved_on.wait(), 120)
    # The first chunk is the first paced piece: the stream began one delay earlier.
    still_streaming = max(0.0, stream_started + PIECE_DELAY * (PIECES - 1) - killed)
    kv = await nc.jetstream().key_value(subjects.RUNS_BUCKET)
    await _wait_done(kv, [run_id])
    await nc.drain()
    if not restart:
        await asyncio.get_running_loop().run_in_executor(None, cluster.restart, "orchestrator-1")
    return next_event - killed, still_streaming, back


def main() -> int:
    fake = FakeOpenAIServer(token_delay=PIECE_DELAY, tokens=PIECES).start()
    start_team(fake, 1)
    rates: dict[int, float] = {}
    resume: dict[str, tuple[float, float, float | None]] = {}
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
    print(
        "The orchestrator is killed while a turn streams; the run moves on when the "
        "worker's report of that turn is answered.\n"
    )
    print("| setup | kill → run's next orchestrator event | turn still streaming then "
          "| held up | restarted replica seen ready after |")  # fmt: skip
    print("|---|---|---|---|---|")
    for setup, (seconds, streaming, back) in resume.items():
        ready = f"{back:.2f} s" if back is not None else "—"
        print(f"| {setup} | {seconds:.2f} s | {streaming:.2f} s | "
              f"{seconds - streaming:.2f} s | {ready} |")  # fmt: skip
    print(
        "\nWith one replica the run is held up only when the restart (Python start, "
        "connect, resume open runs from the KV bucket) takes longer than the turn has "
        "left to stream; the worker's report then waits for its timeout (3 s) and is "
        "retried. With two, the survivor answers the report at once."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

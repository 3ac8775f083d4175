"""Benchmark: the HTTP API — SSE delivery latency, 200 SSE clients, POST /v1/runs rate.

A nats-server (JetStream on disk), two orchestrator replicas (``--orchestrators``; one
replica handles creates one at a time, ~450/s here) and ONE API process
(``python -m massgen_api``, uvicorn), all on 127.0.0.1. No worker runs: this bench
plays the worker itself, publishing chunk events on a run's event subject exactly as a
worker does (``Chunk`` JSON with its ``ts``), so delivery is measured from the
worker's publish to the moment an HTTP client has parsed the SSE frame.

1. One SSE client, 1000 chunks published 3 ms apart: latency p50/p99/max
   (targets: p50 <= 2 ms, p99 <= 10 ms).
2. 200 SSE clients on the same run, 100 chunks 50 ms apart: every client gets every
   event; latency over all deliveries (client parsing shares the 2 cores).
3. ``POST /v1/runs`` (team by name) from 64 concurrent connections, 3000 requests:
   requests per second (target >= 500), each a real run created by the orchestrator.

    .venv/bin/python bench/bench_api.py
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats
import yaml
from massgen_cli.nats_server import NatsServer
from massgen_proto import events as ev
from massgen_proto import subjects

TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Procs:
    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env, self.procs = folder, env, []

    def start(self, name: str, *command: str) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, *command], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, env=self.env)  # fmt: skip
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def wait_ready(url: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("API not ready")


async def sse_reader(client: httpx.AsyncClient, run_id: str, latencies: list[float],
                     started: asyncio.Event | None = None) -> int:  # fmt: skip
    """Read the run's SSE stream to run_finished; append chunk latencies; return count."""
    count = 0
    async with client.stream("GET", f"/v1/runs/{run_id}/events", headers=HEADERS) as response:
        if started is not None:
            started.set()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                now = time.time()
                count += 1
                if '"kind":"chunk"' in line:
                    event = ev.Chunk.model_validate_json(line[6:])
                    latencies.append((now - event.ts) * 1000)
                elif '"kind":"run_finished"' in line:
                    return count
    return count


async def publish_chunks(js, run_id: str, n: int, gap: float, finish: bool = True) -> None:
    subject = subjects.events_subject(run_id, "stream")
    for i in range(n):
        chunk = ev.Chunk(run_id=run_id, agent="a1", label="agent1", turn_id=f"{run_id}-agent1-t1",
                         channel="content", text=f"w{i} ")  # fmt: skip
        await js.publish(subject, chunk.model_dump_json().encode())
        await asyncio.sleep(gap)
    if finish:
        done = ev.RunFinished(run_id=run_id, status="cancelled", message="bench over")
        await js.publish(subjects.events_subject(run_id, "run"), done.model_dump_json().encode())


async def create(client: httpx.AsyncClient, question: str = "bench?") -> str:
    response = await client.post("/v1/runs", json={"team": "bench", "question": question},
                                 headers=HEADERS)  # fmt: skip
    response.raise_for_status()
    return response.json()["id"]


async def raw_posts(port: int, total: int, connections: int) -> list[int]:
    """POST /v1/runs ``total`` times over ``connections`` keep-alive connections."""
    body = b'{"team": "bench", "question": "bench?"}'
    request = (
        b"POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    statuses: list[int] = []

    async def connection(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                writer.write(request)
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                statuses.append(status)
        finally:
            writer.close()

    share, extra = divmod(total, connections)
    await asyncio.gather(*(connection(share + (i < extra)) for i in range(connections)))
    return statuses


async def bench(args) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="massgen-bench-api-"))
    teams = folder / "teams"
    teams.mkdir()
    agents = [{"id": f"a{i}", "backend": {"type": "chatcompletion", "model": f"m{i}",
               "base_url": "http://127.0.0.1:9/v1", "api_key": "x"}}
              for i in (1, 2, 3)]  # fmt: skip
    (teams / "bench.yaml").write_text(yaml.safe_dump({"agents": agents}))
    server = NatsServer(store_dir=folder / "jetstream").start()
    port = free_port()
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    env = dict(os.environ, PYTHONUNBUFFERED="1", MASSGEN_API_TOKENS=f"bench:{digest}")
    procs = Procs(folder, env)
    url = f"http://127.0.0.1:{port}"
    results: dict = {}
    try:
        for i in range(args.orchestrators):
            procs.start(f"orchestrator-{i}", "-m", "massgen_orchestrator", "--nats", server.url,
                        "--log-level", "warning")  # fmt: skip
        api = procs.start("api", "-m", "massgen_api", "--nats", server.url, "--port", str(port),
                    "--teams-dir", str(teams), "--log-level", "warning")  # fmt: skip
        await wait_ready(url)
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            # 1. one client
            run_id = await create(client)
            latencies: list[float] = []
            started = asyncio.Event()
            reader = asyncio.create_task(sse_reader(client, run_id, latencies, started))
            await started.wait()
            await asyncio.sleep(0.3)
            await publish_chunks(js, run_id, args.chunks, 0.003)
            await asyncio.wait_for(reader, 60)
            results["single"] = latencies

            # 2. many clients
            run_id = await create(client)
            many: list[float] = []
            counts: list[int] = []
            events: list[asyncio.Event] = [asyncio.Event() for _ in range(args.clients)]
            readers = [asyncio.create_task(sse_reader(client, run_id, many, events[i]))
                       for i in range(args.clients)]  # fmt: skip
            await asyncio.gather(*(e.wait() for e in events))
            await asyncio.sleep(1.0)
            t0 = time.perf_counter()
            await publish_chunks(js, run_id, args.fan_chunks, 0.05)
            counts = await asyncio.wait_for(asyncio.gather(*readers), 120)
            results["fan"] = (many, counts, time.perf_counter() - t0)

            for _ in range(50):  # warm-up
                await create(client)
        # 3. POST /v1/runs rate, from a minimal keep-alive HTTP/1.1 client (httpx itself
        # would use more CPU than the API on a 2-core machine).
        cpu0, load0 = cpu_seconds(api.pid), os.getloadavg()[0]
        t0 = time.perf_counter()
        statuses = await raw_posts(port, args.posts, args.concurrency)
        results["posts"] = (args.posts, time.perf_counter() - t0,
                            sum(1 for s in statuses if s != 201))  # fmt: skip
        results["api_cpu_ms"] = (cpu_seconds(api.pid) - cpu0) * 1000 / args.posts
        results["load"] = max(load0, os.getloadavg()[0])
        await nc.drain()
    finally:
        procs.stop()
        server.stop()
    return results


def report(results: dict, args) -> str:
    single = results["single"]
    fan, counts, fan_seconds = results["fan"]
    posts, seconds, failures = results["posts"]
    expected = args.fan_chunks + 1
    complete = sum(1 for c in counts if c >= expected + 1)  # + run_created
    rate = posts / seconds
    ok = lambda good: "✅" if good else "❌"  # noqa: E731
    p50, p99 = statistics.median(single), pct(single, 0.99)
    lines = [
        "## HTTP API (`bench/bench_api.py`)",
        "",
        f"nats-server + {args.orchestrators} orchestrator replicas + 1 API process "
        "(uvicorn, uvloop) "
        "on loopback; the bench",
        "publishes chunk events as a worker does and reads SSE with httpx in its own process.",
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| SSE delivery, 1 client, {len(single)} chunks: p50 | {p50:.2f} ms "
        f"| ≤ 2 ms {ok(p50 <= 2)} |",
        f"| SSE delivery, 1 client: p99 | {p99:.2f} ms | ≤ 10 ms {ok(p99 <= 10)} |",
        f"| SSE delivery, 1 client: max | {max(single):.2f} ms | |",
        f"| {args.clients} SSE clients on one API process: clients that got every event | "
        f"{complete}/{len(counts)} | all {ok(complete == len(counts))} |",
        f"| {args.clients} SSE clients: delivery p50 / p99 over {len(fan)} deliveries | "
        f"{statistics.median(fan):.1f} / {pct(fan, 0.99):.1f} ms | |",
        f"| `POST /v1/runs`, {args.concurrency} keep-alive connections, {posts} runs "
        f"| {rate:.0f} req/s "
        f"({failures} failed) | ≥ 500 {ok(rate >= 500 and not failures)} |",
        f"| API process CPU per `POST /v1/runs` | {results['api_cpu_ms']:.2f} ms "
        f"(≈ {1000 / results['api_cpu_ms']:.0f} req/s per core) | |",
        "",
        f"Machine load average during the POST phase: {results['load']:.1f} on {os.cpu_count()} "
        "cores (shared); each replica of the orchestrator handles creates one at a time.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--fan-chunks", type=int, default=100)
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--orchestrators",
        type=int,
        default=2,
        help="orchestrator replicas (one queue group); creates are serial per replica",
    )
    args = parser.parse_args()
    results = asyncio.run(bench(args))
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

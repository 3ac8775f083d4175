"""Chaos: steady runs through the API while random processes are SIGKILLed and restarted.

The ``make cluster-up`` topology as processes on loopback (scripts/cluster.py): 3 NATS
nodes (JetStream R3) behind a TCP balancer, 3 orchestrators, 2 workers per provider
(``chatcompletion`` and ``vllm``, both pointed at the scripted fake model, which runs
as a process of its own: tests/support/fakes/serve.py), the mcp-gateway and 2 API replicas
(bearer-token auth on). A 3-agent team (tests/support/cluster_helpers.py
``team3_config``: default timeouts, so a dropped turn costs 600 s) answers.

1. Baseline: ``--baseline-runs`` runs submitted ``--rate`` per second, no kills.
2. Chaos: ``--runs`` runs at the same rate while every ``--kill-every`` seconds one
   process is killed with SIGKILL and restarted at once (as its Kubernetes controller
   would). Victims come in shuffled rounds over the kinds worker, orchestrator, NATS
   node, gateway, API (a random process of the kind), with at most one process of a
   kind down at a time, so a NATS node is killed only while the other two are up and
   caught up (R3 streams keep their quorum).

The client alternates between the API replicas. Each create carries an
``Idempotency-Key``; a create whose reply was lost (connection broken after the request
went out) or failed (5xx) is sent again with the same key, which starts or finds the
same run; a refused connection is retried on the other replica. Every run is then polled
(``GET /v1/runs/{id}``) until it is over. Reported: runs submitted, completed, lost
(not completed within ``--limit`` seconds of submission: unfinished, failed, timed out
or never created), wrong (completed, but an answer is not its agent's scripted one, the
winner does not hold the most votes, or the final answer is not the winner's), and
run time (first create attempt -> ``run_finished``) p50 / p99 against the baseline.
Targets: 0 lost of 1000; p99 at most 5 s above the baseline's.

    .venv/bin/python bench/bench_chaos.py [--runs 1000] [--rate 2] [--kill-every 5]

tests/distributed/test_chaos.py runs a short version through the same functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)

from scripts.cluster import Cluster  # noqa: E402
from tests.support.cluster_helpers import (  # noqa: E402
    PROVIDERS,
    ApiDriver,
    RunOutcome,
    check_result,
    diagnose,
    drive_runs,
    team3_config,
    team3_expected,
)

__all__ = [
    "CHAOS_KINDS",
    "Kill",
    "Monkey",
    "Phase",
    "chaos_cluster",
    "fake_model",
    "main",
    "run_phase",
]

CHAOS_KINDS = ("worker", "orchestrator", "nats", "mcp-gateway", "api")


def chaos_cluster(
    folder: str | Path, *, ack_wait: float = 3.0, graceful_timeout: float = 10.0
) -> Cluster:
    """The cluster-up topology with 3 orchestrators and 2 API replicas (not started)."""
    return Cluster(
        folder, PROVIDERS, workers_per_provider=2, orchestrators=3, apis=2,
        worker_concurrency=8, ack_wait=ack_wait, graceful_timeout=graceful_timeout,
        stream_replicas=3, with_extras=True,
    )  # fmt: skip


@contextlib.contextmanager
def fake_model(token_delay: float = 0.002, tokens: int = 8) -> Iterator[str]:
    """The fake model (study agents m1..m3) as a process of its own; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fakes.serve", "--team", "3",
         "--token-delay", str(token_delay), "--tokens", str(tokens), "--exit-on-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=ROOT,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake model did not start")
        yield json.loads(line)["base_url"]
    finally:
        proc.stdin.close()  # --exit-on-eof
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the monkey -------------------------------------------------------------------------------


@dataclass
class Kill:
    name: str
    kind: str
    at: float
    """Seconds after the chaos began."""
    ready_after: float | None = None
    """Seconds from the kill until the restarted process was ready again."""
    error: str | None = None
    wall: float = field(default_factory=time.time)
    """When it was killed (epoch seconds), to tell which runs it slowed."""


class Monkey:
    """Kills one process every ``every`` seconds (SIGKILL) and restarts it at once.

    Kinds come in shuffled rounds (each kind once per round); a kind is skipped while one
    of its processes is still restarting, and NATS nodes are killed only while all
    three are ready (healthz: JetStream current), so two are never down together.
    """

    def __init__(
        self, cluster: Cluster, every: float, seed: int = 1, kinds: tuple[str, ...] = CHAOS_KINDS
    ) -> None:
        self.cluster = cluster
        self.every = every
        self.random = random.Random(seed)
        self.kinds = [k for k in kinds if cluster.names(k)]
        self.kills: list[Kill] = []
        self._restarting: dict[str, str] = {}
        """kind -> name of its process being restarted."""
        self._round: list[str] = []
        self._tasks: list[asyncio.Future] = []

    def _pick(self) -> str | None:
        """The next victim (blocking: asks readiness probes), None when none may die now."""
        if not self._round:
            self._round = self.random.sample(self.kinds, len(self.kinds))
        for kind in list(self._round):
            if kind in self._restarting:
                continue
            names = self.cluster.names(kind)
            if kind == "nats" and not all(self.cluster.ready(n) for n in names):
                continue
            ready = [n for n in names if self.cluster.ready(n)]
            if not ready:
                continue
            self._round.remove(kind)
            return self.random.choice(ready)
        return None

    def _restart(self, kill: Kill, killed_at: float) -> None:
        try:
            try:
                self.cluster.restart(kill.name, wait=120.0)
            except (RuntimeError, TimeoutError) as error:  # once more, as a controller would
                kill.error = f"{type(error).__name__}: {error}"
                time.sleep(2.0)
                self.cluster.restart(kill.name, wait=120.0)
            kill.ready_after = time.monotonic() - killed_at
        except Exception as error:  # reported, not raised: the run counts tell the rest
            kill.error = f"{type(error).__name__}: {error}"
        finally:
            self._restarting.pop(kill.kind, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Kill and restart until ``stop`` is set; then wait for restarts to finish."""
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        next_at = began + self.every
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
            if stop.is_set():
                break
            name = await loop.run_in_executor(None, self._pick)
            if name is None:
                next_at = time.monotonic() + 0.5
                continue
            kind = self.cluster.procs[name].kind
            killed_at = time.monotonic()
            kill = Kill(name, kind, round(killed_at - began, 1))
            self._restarting[kind] = name
            await loop.run_in_executor(None, self.cluster.kill, name)
            self.kills.append(kill)
            self._tasks.append(loop.run_in_executor(None, self._restart, kill, killed_at))
            next_at = killed_at + self.every
        if self._tasks:
            await asyncio.gather(*self._tasks)


# -- one phase ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Phase:
    name: str
    outcomes: list[RunOutcome]
    seconds: float
    kills: list[Kill] = field(default_factory=list)
    client: Counter = field(default_factory=Counter)

    @property
    def completed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "completed" and not o.problems]

    @property
    def lost(self) -> list[RunOutcome]:
        """Not completed within the limit: unfinished, failed, timed out, never created."""
        return [o for o in self.outcomes if o.status != "completed"]

    @property
    def wrong(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "completed" and o.problems]

    @property
    def durations(self) -> list[float]:
        return [o.duration for o in self.completed if o.duration is not None]

    def causes(self) -> Counter:
        """Why the lost runs were lost (``RunOutcome.cause``), counted."""
        return Counter(o.cause() for o in self.lost)

    def failures(self, limit: int = 20) -> str:
        """Lost and wrong runs, one line each (last known status), and the kills."""
        lines = [f"lost: {n} {cause}" for cause, n in self.causes().most_common()]
        for title, group in (("lost", self.lost), ("wrong", self.wrong)):
            if group:
                lines.append(f"{len(group)} {title} of {len(self.outcomes)}:")
                lines += [f"  {o.describe()} {o.problems or ''}" for o in group[:limit]]
        if self.kills:
            lines.append("kills: " + ", ".join(
                f"{k.name}@{k.at}s" + (f"(ready +{k.ready_after:.1f}s)" if k.ready_after else "")
                + (f"[{k.error}]" if k.error else "")
                for k in self.kills
            ))  # fmt: skip
        lines.append(f"client: {dict(self.client)}")
        return "\n".join(lines)


async def run_phase(
    cluster: Cluster,
    base_url: str,
    *,
    runs: int,
    rate: float,
    kill_every: float | None = None,
    seed: int = 1,
    limit: float = 300.0,
    tag: str = "chaos",
) -> Phase:
    """Submit ``runs`` runs ``rate`` per second through the API replicas and follow them;
    with ``kill_every``, a process is killed (and restarted) that often until the last
    run has been submitted."""
    driver = ApiDriver(cluster.api_urls, cluster.api_headers())
    submitted = asyncio.Event()
    monkey = Monkey(cluster, kill_every, seed) if kill_every else None
    chaos = asyncio.create_task(monkey.run(submitted)) if monkey else None
    started = time.monotonic()
    try:
        outcomes = await drive_runs(
            driver, team3_config(base_url), runs, rate, tag=tag, limit=limit,
            submitted=submitted,
        )  # fmt: skip
    finally:
        submitted.set()
        if chaos is not None:
            await chaos
        await driver.close()
    with contextlib.suppress(Exception):  # a diagnosis, not a measurement
        await asyncio.wait_for(diagnose(cluster, outcomes), 60)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(explain_wrong(cluster, outcomes), 60)
    return Phase(
        tag, outcomes, time.monotonic() - started,
        kills=monkey.kills if monkey else [], client=driver.counts,
    )  # fmt: skip


async def explain_wrong(cluster: Cluster, outcomes: list[RunOutcome]) -> None:
    """For each wrong run, add to its problems what the events stream itself holds (the
    orchestrator's events of the run, in order) and what each API replica serves now:
    tells an event that was never published from one a reader missed."""
    wrong = [o for o in outcomes if o.status == "completed" and o.problems and o.run_id]
    if not wrong:
        return
    from massgen_proto import subjects
    from nats.js.api import ConsumerConfig

    from tests.support.cluster_helpers import connect_as

    nc = await connect_as(cluster, "api")
    try:
        js = nc.jetstream()
        for outcome in wrong:
            sub = await js.subscribe(
                subjects.events_subject(outcome.run_id, "run"), stream=subjects.EVENTS_STREAM,
                ordered_consumer=True, config=ConsumerConfig(inactive_threshold=5.0),
            )  # fmt: skip
            kinds = []
            while True:
                msg = await sub.next_msg(timeout=5)
                data = json.loads(msg.data)
                kinds.append(f"{data['kind']}:{data.get('agent', '')}")
                if not msg.metadata.num_pending:
                    break
            await sub.unsubscribe()
            outcome.problems.append("stream holds: " + " ".join(kinds))
    finally:
        await nc.close()
    async with httpx.AsyncClient(headers=cluster.api_headers(), timeout=30) as http:
        for outcome in wrong:
            for url in cluster.api_urls:
                view = (await http.get(f"{url}/v1/runs/{outcome.run_id}")).json()
                again = check_result(view, team3_expected())
                outcome.problems.append(f"{url} now: {again or 'right'}")


# -- report ---------------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _near(outcome: RunOutcome, kills: list[Kill], kind: str, before: float = 10.0) -> bool:
    """A kill of ``kind`` in the ``before`` seconds before the run began, or during it."""
    end = outcome.finished_at or outcome.submitted_at
    return any(k.kind == kind and outcome.submitted_at - before <= k.wall <= end for k in kills)


def _p99_by_kind(chaos: Phase, baseline: Phase) -> list[str]:
    """Where the tail comes from: p99 of the runs near a kill of each kind, and of the
    runs near none (near: the kill came at most 10 s before the run began, or during
    it)."""
    base = percentile(baseline.durations, 0.99) or 0.0
    rows = [
        "Where the tail comes from (near: a kill at most 10 s before the run began, or "
        "during it; a run may be near several):\n",
        "| runs | count | p99 | p99 extra |",
        "|---|---|---|---|",
    ]
    runs = chaos.completed
    groups = [(f"near a kill: {kind}", [o for o in runs if _near(o, chaos.kills, kind)])
              for kind in CHAOS_KINDS]  # fmt: skip
    calm = [o for o in runs if not any(_near(o, chaos.kills, k) for k in CHAOS_KINDS)]
    groups.append(("near no kill", calm))
    groups.append(
        ("near no NATS node kill", [o for o in runs if not _near(o, chaos.kills, "nats")])
    )
    for name, group in groups:
        p99 = percentile([o.duration for o in group if o.duration is not None], 0.99)
        extra = None if p99 is None else p99 - base
        rows.append(f"| {name} | {len(group)} | {_s(p99)} | {_s(extra)} |")
    return [*rows, ""]


def report(args: argparse.Namespace, baseline: Phase, chaos: Phase, up_seconds: float) -> str:
    lines = ["## Chaos: random SIGKILLs under steady load (local cluster stand-in)\n"]
    lines.append(
        "3 NATS nodes (JetStream R3) behind a balancer, 3 orchestrators, 2 workers per "
        f"provider (2 providers, ack wait {args.ack_wait:g} s), the gateway and 2 API "
        "replicas, on this machine's loopback; the fake model as a process of its own. "
        f"3-agent runs (default timeouts: turn 600 s) through the API, {args.rate:g} per "
        "second, alternating replicas. Chaos: one process SIGKILLed every "
        f"{args.kill_every:g} s (shuffled rounds over worker, orchestrator, NATS node, "
        "gateway, API; at most one of a kind down; restarted at once). Lost = not "
        f"completed within {args.limit:g} s of submission. Cluster start: {up_seconds:.0f} s.\n"
    )
    lines.append("| phase | runs | completed | lost | wrong | p50 | p99 | max | kills |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for phase in (baseline, chaos):
        times = phase.durations
        lines.append(
            f"| {phase.name} | {len(phase.outcomes)} | {len(phase.completed)} | "
            f"{len(phase.lost)} | {len(phase.wrong)} | {_s(percentile(times, 0.5))} | "
            f"{_s(percentile(times, 0.99))} | {_s(max(times) if times else None)} | "
            f"{len(phase.kills)} |"
        )
    p99_base, p99_chaos = percentile(baseline.durations, 0.99), percentile(chaos.durations, 0.99)
    extra = None if p99_base is None or p99_chaos is None else p99_chaos - p99_base
    lost_ok = "met" if not chaos.lost else "NOT met"
    extra_ok = "met" if extra is not None and extra <= 5.0 else "NOT met"
    lines.append(
        f"\nTargets: 0 lost of {len(chaos.outcomes)} — {len(chaos.lost)} lost ({lost_ok}); "
        f"p99 extra time ≤ 5 s — {_s(extra)} ({extra_ok}). Wrong results: {len(chaos.wrong)}.\n"
    )
    lines += _p99_by_kind(chaos, baseline)
    if chaos.lost:
        lines.append("| why lost | runs |\n|---|---|")
        lines += [f"| {cause} | {n} |" for cause, n in chaos.causes().most_common()]
        lines.append("")
    by_kind: dict[str, list[Kill]] = {}
    for kill in chaos.kills:
        by_kind.setdefault(kill.kind, []).append(kill)
    lines.append("| killed kind | kills | ready again after (mean / max) | restart errors |")
    lines.append("|---|---|---|---|")
    for kind in CHAOS_KINDS:
        kills = by_kind.get(kind, [])
        back = [k.ready_after for k in kills if k.ready_after is not None]
        mean = sum(back) / len(back) if back else None
        lines.append(
            f"| {kind} | {len(kills)} | {_s(mean)} / {_s(max(back) if back else None)} | "
            f"{sum(1 for k in kills if k.error)} |"
        )
    by_duration = sorted(chaos.completed, key=lambda o: -(o.duration or 0))
    slow, slowest = by_duration[:5], by_duration[: max(5, len(chaos.outcomes) // 100)]
    lines.append(
        "\nClient side during chaos: "
        + (", ".join(f"{k} {v}" for k, v in sorted(chaos.client.items())) or "no errors")
        + " (refused: connection refused, create retried on the other replica; "
        "ambiguous: connection lost after the create was sent, sent again with the same "
        "Idempotency-Key; http_500: the API failed internally, "
        "http_502/503: the orchestrator or NATS refused / did not answer, create retried; "
        "http_4xx: refused, given up; sse_*: the event stream broke or was refused, "
        "resumed on a replica; get_*: reading the result failed, retried). "
        "Slowest chaos runs: "
        + ", ".join(f"{o.duration:.1f} s" for o in slow if o.duration is not None)
        + "."
    )
    lines.append(
        "\nThe slowest 1 % of chaos runs and the kills during each (kind @ seconds "
        "after its first create attempt):\n\n```"
    )
    for outcome in slowest:
        end = outcome.finished_at or outcome.submitted_at
        during = [f"{k.kind}@{k.wall - outcome.submitted_at:+.1f}" for k in chaos.kills
                  if outcome.submitted_at - 6 <= k.wall <= end]  # fmt: skip
        lines.append(
            f"{outcome.run_id} {outcome.duration:.1f} s "
            f"(create attempts {outcome.attempts}): {' '.join(during) or 'none'}"
        )
    lines.append("```")
    if chaos.lost or chaos.wrong:
        lines.append("\nLost / wrong runs (last known status):\n\n```")
        lines.append(chaos.failures(limit=15))
        lines.append("```")
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in the chaos phase")
    parser.add_argument("--baseline-runs", type=int, default=200, help="runs without kills")
    parser.add_argument("--rate", type=float, default=2.0, help="runs submitted per second")
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument("--limit", type=float, default=300.0,
                        help="seconds after submission a run must have completed by")  # fmt: skip
    parser.add_argument("--ack-wait", type=float, default=3.0, help="workers' ack wait (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="keep the cluster's state and logs here")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        folder = Path(args.dir) if args.dir else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="bench-chaos-")))  # fmt: skip
        base_url = stack.enter_context(fake_model())
        began = time.monotonic()
        cluster = chaos_cluster(folder / "cluster", ack_wait=args.ack_wait).up(timeout=180)
        stack.callback(cluster.down)
        up_seconds = time.monotonic() - began
        if len(cluster.api_urls) != 2:
            print(f"API replicas did not start: {cluster.notes}", file=sys.stderr)
            return 1

        def phase(limit: float = args.limit, **kwargs) -> Phase:
            result = asyncio.run(
                run_phase(cluster, base_url, rate=args.rate, limit=limit, seed=args.seed,
                          **kwargs)
            )  # fmt: skip
            print(
                f"{result.name}: {len(result.completed)}/{len(result.outcomes)} completed, "
                f"{len(result.lost)} lost, {len(result.wrong)} wrong, "
                f"{len(result.kills)} kills in {result.seconds:.0f} s",
                file=sys.stderr, flush=True,
            )  # fmt: skip
            return result

        phase(runs=6, tag="warmup", limit=min(60.0, args.limit))  # first litellm calls
        baseline = phase(runs=args.baseline_runs, tag="baseline")
        chaos = phase(runs=args.runs, kill_every=args.kill_every, tag="chaos")
        if chaos.lost or chaos.wrong:
            print(chaos.failures(), file=sys.stderr)
        print(report(args, baseline, chaos, up_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

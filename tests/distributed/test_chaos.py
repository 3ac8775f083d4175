"""A short chaos run: no run is lost or wrong while random processes are SIGKILLed.

The same code path as bench/bench_chaos.py (its functions, imported): the cluster-up
topology with 3 orchestrators, 2 workers per provider, the gateway and 2 API replicas;
100 3-agent runs (default timeouts) submitted through the API while one process
(worker, orchestrator, NATS node, gateway or API, in shuffled rounds) is killed with
SIGKILL every 5 s and restarted. Every run must complete, with a result the fake agents
could have produced, within 120 s of its submission (a dropped turn costs 600 s).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.bench_chaos import Cluster, chaos_cluster, fake_model, run_phase

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(420)]

RUNS = 100
RATE = 1.25  # runs per second: 80 s of submissions
KILL_EVERY = 5.0
LIMIT = 120.0


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    with fake_model() as url:
        yield url


@pytest.fixture(scope="module")
def chaos_stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = chaos_cluster(
        tmp_path_factory.mktemp("chaos"), ack_wait=6.0, graceful_timeout=5.0
    ).up(timeout=120)
    try:
        assert len(cluster.api_urls) == 2, f"API replicas did not start: {cluster.notes}"
        yield cluster
    finally:
        cluster.down()


def test_no_run_lost_or_wrong_while_processes_are_killed(
    chaos_stand_in: Cluster, fake_url: str
) -> None:
    # Warm-up (first model calls in each worker); runs that fail here fail without any
    # kill, so say so at once instead of waiting through the chaos phase.
    warm = asyncio.run(run_phase(chaos_stand_in, fake_url, runs=3, rate=3, limit=60, tag="warmup"))
    assert not warm.lost and not warm.wrong, "before any kill:\n" + warm.failures()

    phase = asyncio.run(
        run_phase(
            chaos_stand_in, fake_url, runs=RUNS, rate=RATE, kill_every=KILL_EVERY,
            limit=LIMIT, seed=7,
        )
    )  # fmt: skip

    report = phase.failures()
    assert len(phase.kills) >= 10, report
    kinds = Counter(k.kind for k in phase.kills)
    assert set(kinds) == {"worker", "orchestrator", "nats", "mcp-gateway", "api"}, report
    assert not [k for k in phase.kills if k.ready_after is None], report  # all came back
    assert phase.lost == [], report
    assert phase.wrong == [], report

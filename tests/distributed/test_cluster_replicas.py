"""Several orchestrator replicas serve runs as fast as one, with the production defaults.

The cluster stand-in (scripts/cluster.py) with 3 NATS nodes, 3 orchestrators, 2 workers
per provider, the gateway and 2 API replicas. Runs of a 3-agent team are submitted
through the HTTP API (alternating replicas), one every 0.3 s, with the *default* turn
timeout (600 s): a turn the orchestrators drop is not retried for 10 minutes, so a run
that does not finish within 30 s of its submission is a dropped turn, not slowness.

The phases run with exactly 1, then 2, then 3 orchestrators alive (the others stopped);
any replica may take any report of any run, so a replica answering from a stale copy
of a run's state would show up here as stalled runs.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator

import pytest

from tests.support.cluster_helpers import (
    PROVIDERS,
    ApiDriver,
    Cluster,
    RunOutcome,
    diagnose,
    drive_runs,
    team3_config,
)
from tests.support.fakes.openai_server import FakeOpenAIServer
from tests.support.fakes.serve import start_team

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(240)]

RUNS = 20
RATE = 1 / 0.3  # runs per second
LIMIT = 30.0
"""Seconds from submission within which every run must have completed."""

_durations: dict[int, list[float]] = {}
"""Replicas -> completed runs' durations, for comparing with the one-replica phase."""


@pytest.fixture(scope="module")
def fake3() -> Iterator[FakeOpenAIServer]:
    """The fake model serving study agents m1..m3 (answer once, vote agent1, present)."""
    server = FakeOpenAIServer(token_delay=0.002, tokens=8).start()
    start_team(server, 3)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def replicas_cluster(
    tmp_path_factory: pytest.TempPathFactory, fake3: FakeOpenAIServer
) -> Iterator[Cluster]:
    """3 orchestrators, 2 workers per provider, gateway, 2 APIs; warmed up by 4 runs."""
    stand_in = Cluster(
        tmp_path_factory.mktemp("replicas"), PROVIDERS, workers_per_provider=2,
        orchestrators=3, worker_concurrency=8, ack_wait=6.0, graceful_timeout=5.0,
        stream_replicas=3, with_extras=True, apis=2,
    ).up(timeout=120)  # fmt: skip
    try:
        assert len(stand_in.api_urls) == 2, f"API replicas did not start: {stand_in.notes}"
        # Warm-up (first litellm calls in each worker), on one orchestrator: not part
        # of any measurement.
        _only_orchestrators(stand_in, 1)
        asyncio.run(_phase(stand_in, fake3, runs=4, tag="warmup"))
        yield stand_in
    finally:
        stand_in.down()


def _only_orchestrators(cluster: Cluster, count: int) -> None:
    for index, name in enumerate(cluster.names("orchestrator")):
        if index < count:
            if not cluster.ready(name):
                cluster.restart(name)
        else:
            cluster.stop_one(name)


async def _phase(
    cluster: Cluster, fake: FakeOpenAIServer, *, runs: int = RUNS, tag: str
) -> list[RunOutcome]:
    driver = ApiDriver(cluster.api_urls, cluster.api_headers())
    try:
        outcomes = await drive_runs(
            driver, team3_config(fake.base_url), runs, RATE, tag=tag, limit=LIMIT + 5
        )
    finally:
        await driver.close()
    await diagnose(cluster, outcomes)
    return outcomes


def _report(outcomes: list[RunOutcome]) -> str:
    bad = [o for o in outcomes if o.status != "completed" or o.problems or _late(o)]
    lines = [f"{len(bad)} of {len(outcomes)} runs did not complete correctly within {LIMIT} s:"]
    for outcome in bad:
        took = f"{outcome.duration:.1f} s" if outcome.duration is not None else "unfinished"
        lines.append(f"  {took}: {outcome.describe()} problems={outcome.problems}")
    return "\n".join(lines)


def _late(outcome: RunOutcome) -> bool:
    return outcome.duration is None or outcome.duration > LIMIT


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_runs_through_the_api_complete_with_orchestrator_replicas(
    replicas_cluster: Cluster, fake3: FakeOpenAIServer, replicas: int
) -> None:
    _only_orchestrators(replicas_cluster, replicas)
    outcomes = asyncio.run(_phase(replicas_cluster, fake3, tag=f"rep{replicas}"))

    assert all(o.run_id for o in outcomes), _report(outcomes)
    good = [o for o in outcomes if o.status == "completed" and not o.problems and not _late(o)]
    assert len(good) == len(outcomes), _report(outcomes)
    durations = sorted(o.duration for o in outcomes if o.duration is not None)
    _durations[replicas] = durations
    print(
        f"{replicas} replica(s): median {statistics.median(durations):.2f} s, "
        f"max {durations[-1]:.2f} s over {len(durations)} runs"
    )
    one = _durations.get(1)
    if replicas > 1 and one:
        # About as fast as one replica: the median within 2x (or 3 s) of one replica's.
        median, median_one = statistics.median(durations), statistics.median(one)
        assert median <= max(2 * median_one, median_one + 3.0), (
            f"median run time {median:.2f} s with {replicas} replicas vs "
            f"{median_one:.2f} s with one; all: {durations}"
        )

"""Fixtures of the distributed tests: the cluster stand-in and the fake model (module scope)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster_helpers import PROVIDERS, Cluster
from tests.support.fakes.openai_server import FakeOpenAIServer
from tests.support.fakes.serve import start_team


@pytest.fixture(scope="module")
def fake_team() -> Iterator[FakeOpenAIServer]:
    """The fake model serving study-agent behaviours m1, m2 (a few ms per piece)."""
    server = FakeOpenAIServer(token_delay=0.002, tokens=8).start()
    start_team(server, 2)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster stand-in, up and ready; stopped (and its state removed) afterwards."""
    folder = tmp_path_factory.mktemp("cluster")
    stand_in = Cluster(
        folder, PROVIDERS, workers_per_provider=2, orchestrators=2, worker_concurrency=8,
        ack_wait=6.0, graceful_timeout=5.0, stream_replicas=3, with_extras=False,
    ).up(timeout=120)  # fmt: skip
    try:
        yield stand_in
    finally:
        stand_in.down()

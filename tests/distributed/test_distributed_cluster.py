"""The deployment's promises, on the local cluster stand-in (scripts/cluster.py).

- runs spread over two providers' worker pools all complete;
- a crash of one NATS node, one orchestrator and one worker in the middle of runs
  loses none of them (streams have 3 replicas, run state is in KV, unacked turns are
  redelivered);
- a worker logged in as provider A's user can neither take provider B's turns nor
  publish where it has no right: the server refuses and logs a permission violation.

All of it over TLS (the stand-in's default, as production): every client here trusts
the cluster's CA (``connect_as``).
"""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
from massgen_proto import subjects
from massgen_proto.messages import CreateRun

from tests.support.cluster_helpers import (
    PROVIDERS,
    connect_as,
    create_run,
    team_config,
    violations,
    wait_all,
)

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]


async def _runs(cluster, fake, count: int, prefix: str):
    nc = await connect_as(cluster, "api")
    js = nc.jetstream()
    kv = await js.key_value(subjects.RUNS_BUCKET)
    run_ids = [f"{prefix}-{i:02d}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    config = team_config(fake.base_url)
    await asyncio.gather(
        *(create_run(nc, kv, r, f"question {i}: capital of Australia?", config)
          for i, r in enumerate(run_ids))
    )  # fmt: skip
    return nc, kv, run_ids


async def test_fifty_runs_across_two_providers_complete(cluster, fake_team):
    nc, kv, run_ids = await _runs(cluster, fake_team, 50, "many")
    try:
        statuses = await wait_all(kv, run_ids, limit=150)
    finally:
        await nc.drain()
    assert statuses == dict.fromkeys(run_ids, "completed")
    served = {r.body["model"] for r in fake_team.requests}
    assert served == {"m1", "m2"}  # both providers' pools did work
    # Every service ran with least-privilege users and never hit a wall.
    assert violations(cluster) == []


async def test_crashing_a_node_an_orchestrator_and_a_worker_loses_no_run(cluster, fake_team):
    nc, kv, run_ids = await _runs(cluster, fake_team, 20, "chaos")
    try:
        await asyncio.sleep(1.0)  # runs are under way
        for name in ("nats-2", "orchestrator-1", f"worker-{PROVIDERS[0]}-1"):
            cluster.kill(name)  # SIGKILL: a crash, no graceful stop
        await asyncio.sleep(3.0)
        # Their controllers (StatefulSet, Deployment) bring the node and the orchestrator
        # back; the restarted orchestrator resumes open runs from the KV bucket. The
        # worker is not replaced: its unacked turns go to the other worker.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, cluster.restart, "nats-2")
        await loop.run_in_executor(None, cluster.restart, "orchestrator-1")
        statuses = await wait_all(kv, run_ids, limit=170)
    finally:
        await nc.drain()
    assert statuses == dict.fromkeys(run_ids, "completed")


async def test_worker_of_one_provider_cannot_take_another_providers_turns(cluster):
    provider_a, provider_b = PROVIDERS
    errors: list[str] = []

    async def record(error: Exception) -> None:
        errors.append(str(error).lower())

    worker_a = await connect_as(cluster, f"worker-{provider_a}", error_cb=record)
    orchestrator = await connect_as(cluster, "orchestrator")
    worker_b = await connect_as(cluster, f"worker-{provider_b}")
    try:
        # Stop provider B's real workers from taking the probe turn first.
        for index in (1, 2):
            cluster.stop_one(f"worker-{provider_b}-{index}")
        js_orch = orchestrator.jetstream()
        probe = f"probe-{uuid.uuid4().hex[:6]}".encode()
        await js_orch.publish(subjects.turn_subject(provider_b), probe)

        js_a = worker_a.jetstream()
        # 1. Pulling from B's durable consumer: the pull request itself is refused.
        with pytest.raises((nats.errors.TimeoutError, nats.errors.Error)):
            sub = await js_a.pull_subscribe_bind(
                durable=subjects.provider_consumer(provider_b), stream=subjects.TURNS_STREAM
            )
            await sub.fetch(1, timeout=2.0)
        # 2. A consumer of its own over B's subject: refused.
        from nats.js.api import ConsumerConfig

        with pytest.raises((nats.errors.TimeoutError, nats.errors.Error)):
            await js_a.add_consumer(
                subjects.TURNS_STREAM,
                ConsumerConfig(name="sneaky", filter_subject=subjects.turn_subject(provider_b)),
                timeout=2.0,
            )
        # 3. Listening on B's turn subject, and creating runs: refused.
        await worker_a.subscribe(subjects.turn_subject(provider_b))
        await worker_a.publish(
            subjects.SUBMIT_CREATE, CreateRun(question="x", config={}).model_dump_json().encode()
        )
        await worker_a.flush()
        await asyncio.sleep(0.5)

        # The probe is still waiting for B's workers: A got nothing of it.
        info = await worker_b.jetstream().consumer_info(
            subjects.TURNS_STREAM, subjects.provider_consumer(provider_b)
        )
        assert info.num_pending + info.num_ack_pending >= 1
        assert any("permissions violation" in e for e in errors)
        user_lines = "\n".join(violations(cluster, f"worker-{provider_a}"))
        consumer_b = subjects.provider_consumer(provider_b)
        assert f"CONSUMER.MSG.NEXT.{subjects.TURNS_STREAM}.{consumer_b}" in user_lines
        assert "Subscription Violation" in user_lines
        assert subjects.turn_subject(provider_b) in user_lines
        assert subjects.SUBMIT_CREATE in user_lines
    finally:
        await worker_a.close()
        await worker_b.close()
        await orchestrator.close()
        for index in (1, 2):
            cluster.restart(f"worker-{provider_b}-{index}")

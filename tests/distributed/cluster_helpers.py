"""Helpers of the distributed tests: the cluster stand-in, a run driver, log checks.

The cluster (see conftest):  3 NATS nodes behind a balancer, 2 orchestrators and 2 workers
per provider, every process logging in as its own NATS user. Two fake-model
"providers": ``chatcompletion`` and ``vllm`` backends both pointed at the scripted fake
OpenAI server (each accepts a ``base_url``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import nats
from massgen_proto import subjects
from massgen_proto.messages import CreateRun, ErrorReply, OrchestratorReplyAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from cluster import Cluster  # noqa: E402

PROVIDERS = ["chatcompletion", "vllm"]
__all__ = ["PROVIDERS", "Cluster", "connect", "create_run", "team_config", "violations", "wait_all"]

TERMINAL = {"completed", "timed_out", "failed", "cancelled"}


def team_config(base_url: str, turn_timeout: float = 30.0) -> dict[str, Any]:
    """Two agents, one per provider, both on the fake model."""
    return {
        "agents": [
            {"id": "a1", "backend": {"type": "chatcompletion", "model": "m1",
                                     "base_url": base_url, "api_key": "sk-fake"}},
            {"id": "a2", "backend": {"type": "vllm", "model": "m2", "base_url": base_url}},
        ],
        "timeout_settings": {
            "turn_timeout_seconds": turn_timeout,
            "orchestrator_timeout_seconds": 170,
        },
    }  # fmt: skip


async def connect(url: str, **kwargs: Any) -> nats.aio.client.Client:
    """A client that keeps reconnecting through the balancer."""

    async def quiet(_error: Exception) -> None:  # reconnects are expected in these tests
        return None

    kwargs.setdefault("error_cb", quiet)
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, **kwargs)


async def create_run(nc, kv, run_id: str, question: str, config: dict[str, Any]) -> None:
    """Ask an orchestrator to create a run; retry through failovers, never twice."""
    payload = CreateRun(run_id=run_id, question=question, config=config).model_dump_json()
    for _ in range(20):
        try:
            reply = await nc.request(subjects.SUBMIT_CREATE, payload.encode(), timeout=5.0)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            if await run_status(kv, run_id) is not None:
                return  # created; only the reply was lost
            await asyncio.sleep(0.5)
            continue
        parsed = OrchestratorReplyAdapter.validate_json(reply.data)
        if isinstance(parsed, ErrorReply):
            if await run_status(kv, run_id) is not None:
                return
            raise AssertionError(f"run {run_id} refused: {parsed.error}")
        return
    raise AssertionError(f"run {run_id} could not be created")


async def run_status(kv, run_id: str) -> str | None:
    """The run's status in the runs bucket, None if it is not there (or NATS hiccups)."""
    import json

    try:
        entry = await kv.get(run_id)
    except Exception:
        return None
    return str(json.loads(entry.value).get("status"))


async def wait_all(kv, run_ids: list[str], limit: float) -> dict[str, str | None]:
    """Poll the runs bucket until every run is over or ``limit`` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    statuses: dict[str, str | None] = {}
    while True:
        pending = [r for r in run_ids if statuses.get(r) not in TERMINAL]
        for run_id in pending:
            statuses[run_id] = await run_status(kv, run_id)
        if all(statuses.get(r) in TERMINAL for r in run_ids) or loop.time() > deadline:
            return statuses
        await asyncio.sleep(0.5)


def violations(cluster: Cluster, user: str | None = None) -> list[str]:
    """Permission-violation lines in the NATS nodes' logs (optionally for one user)."""
    lines = []
    for log in (cluster.dir / "logs").glob("nats-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "Violation" in line and (user is None or f'user:{user}"' in line):
                lines.append(line)
    return lines

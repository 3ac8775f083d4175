"""A worker process killed mid-turn: JetStream redelivers the turn to another worker.

The orchestrator runs in this process; workers are real ``python -m massgen_worker``
processes with a short ack wait, so a dead worker's turn comes back after ~2 s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import nats
import pytest
from e2e_support import team_config
from massgen_cli.client import follow_run
from massgen_orchestrator.service import OrchestratorService
from massgen_orchestrator.settings import OrchestratorSettings

from tests.support.fakes.agents import study_agent
from tests.support.fakes.openai_server import answer

pytestmark = pytest.mark.timeout(240)

A1 = "Canberra is the capital of Australia."


@pytest.fixture
def start_worker(nats_url: str, tmp_path: Path):
    """Start ``python -m massgen_worker`` processes; every one is stopped at teardown."""
    procs: list[subprocess.Popen] = []
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")

    def start(name: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "massgen_worker", "--nats", nats_url,
                "--providers", "chatcompletion", "--ack-wait", "2", "--memory-streams",
                "--name", name,
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def _until(predicate, timeout: float, what: str) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def test_killed_worker_turn_is_redelivered_and_the_run_completes(
    nats_url, fake_model, start_worker
):
    calls = {"n": 0}
    normal = study_agent(A1, "agent1", presentation="Canberra (after failover).")

    def m1(request):
        calls["n"] += 1
        if calls["n"] == 1:  # the first answer streams for ~20 s: the worker dies during it
            return answer(A1, tokens=400, token_delay=0.05)
        return normal(request)

    fake_model.behave("m1", m1)
    orchestrator = OrchestratorService(OrchestratorSettings(nats_url=nats_url, memory_streams=True))
    await orchestrator.start()
    nc = await nats.connect(nats_url)
    events: list = []
    try:
        first = start_worker("worker-1")
        config = team_config(fake_model.base_url, ["m1"], ["solo"])
        run = asyncio.ensure_future(follow_run(nc, "capital?", config, events.append))
        await _until(lambda: any(e.kind == "chunk" for e in events), 90, "the first turn streaming")
        assert first.poll() is None
        first.kill()  # SIGKILL: no goodbye, the turn stays un-acked
        first.wait(10)
        start_worker("worker-2")
        summary = await asyncio.wait_for(run, 150)
    finally:
        await nc.drain()
        await orchestrator.stop()

    assert summary.status == "completed", summary.message
    assert summary.final_answer == "Canberra (after failover)."
    assert [a.content for a in summary.answers] == [A1]
    started = [e for e in events if e.kind == "turn_started"]
    assert started[0].delivery == 1
    assert any(e.delivery >= 2 for e in started), [(e.turn_id, e.delivery) for e in started]

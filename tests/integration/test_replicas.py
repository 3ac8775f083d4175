"""Coordination that holds with several orchestrator replicas, crashes between a state's
commit and its commands, agreeing agents and failing providers.

Real nats-server, real orchestrator and worker services, the scripted fake model through
litellm. Every test keeps the *default* turn timeout (600 s): a stalled run would show
as a test timeout, not as a slow pass.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import nats
import pytest
from massgen_cli.client import follow_run
from massgen_orchestrator.commands import PublishTurn
from massgen_orchestrator.service import OrchestratorService
from massgen_orchestrator.settings import OrchestratorSettings
from massgen_worker.service import WorkerService
from massgen_worker.settings import WorkerSettings

from tests.support.fakes.agents import first_votable, study_agent
from tests.support.fakes.openai_server import FakeOpenAIServer, error

pytestmark = pytest.mark.timeout(180)

SAME = "Canberra is the capital of Australia."
OTHER = "The capital of Australia is Canberra, a planned city chosen in 1908."


def fast_worker_settings() -> WorkerSettings:
    """Quick provider retries and shutdown (the coordination defaults stay as shipped)."""
    return WorkerSettings(
        retry_base_delay=0.01, retry_max_delay=0.05, provider_retries=1, graceful_timeout=1.0,
        fetch_timeout=0.5,
    )  # fmt: skip


def _team(fake: FakeOpenAIServer, models: list[str]) -> dict:
    """Agents on the fake model with the default timeouts (no timeout_settings)."""
    return {
        "agents": [
            {"id": f"a{i + 1}", "backend": {"type": "chatcompletion", "model": model,
                                            "base_url": fake.base_url, "api_key": "sk-fake"}}
            for i, model in enumerate(models)
        ]
    }  # fmt: skip


async def _replicas(nats_url: str, count: int) -> list[OrchestratorService]:
    replicas = []
    for i in range(count):
        service = OrchestratorService(
            OrchestratorSettings(nats_url=nats_url, memory_streams=True, replica=f"orch-{i}")
        )
        await service.start()
        replicas.append(service)
    return replicas


@asynccontextmanager
async def _stack(nats_url: str, worker_settings: WorkerSettings, replicas: int = 1):
    """Orchestrator replicas and one worker on ``nats_url``; yields a client connection."""
    services = await _replicas(nats_url, replicas)
    worker = WorkerService(nats_url, ["chatcompletion"], worker_settings)
    await worker.start()
    nc = await nats.connect(nats_url)
    try:
        yield nc
    finally:
        await nc.drain()
        await worker.stop()
        for service in services:
            await service.stop()


async def _run(nc, fake: FakeOpenAIServer, models: list[str], events: list | None = None):
    sink = events if events is not None else []
    return await follow_run(
        nc, "What is the capital of Australia?", _team(fake, models), sink.append
    )


@pytest.mark.parametrize("replicas", [2, 3])
async def test_runs_complete_with_several_replicas_and_the_default_turn_timeout(
    nats_url, fake_model, replicas
):
    fake_model.behave("m1", study_agent(SAME, "agent1", presentation="Canberra."))
    fake_model.behave("m2", study_agent(OTHER, "agent1"))
    fake_model.behave("m3", study_agent(OTHER + " Truly.", "agent1"))
    services = await _replicas(nats_url, replicas)
    workers = [
        WorkerService(nats_url, ["chatcompletion"], fast_worker_settings()) for _ in range(2)
    ]
    for worker in workers:
        await worker.start()
    nc = await nats.connect(nats_url)
    try:
        started = time.monotonic()
        summaries = await asyncio.gather(
            *(_run(nc, fake_model, ["m1", "m2", "m3"]) for _ in range(20))
        )
        elapsed = time.monotonic() - started
    finally:
        await nc.drain()
        for worker in workers:
            await worker.stop()
        for service in services:
            await service.stop()
    assert [s.status for s in summaries] == ["completed"] * 20
    assert {s.final_answer for s in summaries} == {"Canberra."}
    # Replicas share the runs instead of repeating each other's work: a turn's reports
    # go back to the replica that published it, which holds the run's current state.
    transitions = 20 * 9  # at least: 3 agents x (turn started, submission, usage)
    assert sum(s.catch_ups for s in services) < transitions // 10, [s.catch_ups for s in services]
    assert all(s.cpu_seconds > 0 for s in services)  # every replica took a share
    # A report answered from a stale cache used to strand the run until the turn timeout.
    assert elapsed < 60


async def test_crash_between_commit_and_publish_loses_no_run(nats_url, fake_model):
    """Replica A commits a transition that publishes turns, then dies before publishing:
    replica B finds the unexecuted outbox and publishes the turns."""
    fake_model.behave("m1", study_agent(SAME, "agent1", presentation="Canberra."))
    fake_model.behave("m2", study_agent(OTHER, "agent1"))
    doomed, survivor = await _replicas(nats_url, 2)
    crashed = asyncio.Event()
    real_perform = doomed._outbox._perform

    async def die_before_publishing(run_id, command, headers):
        if isinstance(command, PublishTurn) and command.request.number > 1:
            if not crashed.is_set():
                crashed.set()
                await doomed._nc.close()  # the process is gone: no publish, no reply
            raise ConnectionError("replica crashed")
        await real_perform(run_id, command, headers)

    doomed._outbox._perform = die_before_publishing  # type: ignore[method-assign]
    worker = WorkerService(nats_url, ["chatcompletion"], fast_worker_settings())
    await worker.start()
    nc = await nats.connect(nats_url)
    try:
        summaries = await asyncio.gather(*(_run(nc, fake_model, ["m1", "m2"]) for _ in range(6)))
    finally:
        await nc.drain()
        await worker.stop()
        await survivor.stop()
        await doomed.stop()
    assert crashed.is_set(), "the fault was never injected"
    assert [s.status for s in summaries] == ["completed"] * 6


async def test_a_watching_replica_reads_no_state_until_it_takes_the_run_over(nats_url, fake_model):
    """Replicas share the work: one that only watches a run holds its summary and timer,
    not its state (it decodes nothing); when the writer dies it reads the state and
    finishes the run."""
    slow = {"tokens": 10, "token_delay": 0.1}  # about a second per response
    fake_model.behave("m1", study_agent(SAME, "agent1", presentation="Canberra.", **slow))
    fake_model.behave("m2", study_agent(OTHER, "agent1", **slow))
    (writer,) = await _replicas(nats_url, 1)
    worker = WorkerService(nats_url, ["chatcompletion"], fast_worker_settings())
    await worker.start()
    nc = await nats.connect(nats_url)
    watcher = None
    try:
        run = asyncio.create_task(_run(nc, fake_model, ["m1", "m2"]))
        while not writer._runs.runs:
            await asyncio.sleep(0.01)
        (run_id,) = writer._runs.runs
        watcher = OrchestratorService(
            OrchestratorSettings(nats_url=nats_url, memory_streams=True, replica="orch-watcher")
        )
        await watcher.start()
        while run_id not in watcher._runs.runs:
            await asyncio.sleep(0.01)
        shadow = watcher._runs.runs[run_id]
        assert shadow.state is None and shadow.summary.writer == "orch-0"
        assert shadow.timer is not None  # it would take over at the run's next wake-up
        await writer._nc.close()  # the writer dies: no publish, no reply, no more writes
        summary = await asyncio.wait_for(run, 60)
    finally:
        await nc.drain()
        await worker.stop()
        if watcher is not None:
            await watcher.stop()
        await writer.stop()
    assert summary.status == "completed" and summary.final_answer.startswith("Canberra.")


async def test_three_identical_answers_take_three_phases_and_no_failed_attempt(nats_url):
    fake = FakeOpenAIServer(token_delay=0.005, tokens=100).start()  # 0.5 s per response
    try:
        for model in ("m1", "m2", "m3"):
            fake.behave(model, study_agent(SAME, first_votable, presentation=SAME))
        events: list = []
        async with _stack(nats_url, WorkerSettings(concurrency=8)) as nc:
            summary = await _run(nc, fake, ["m1", "m2", "m3"], events)
    finally:
        fake.stop()
    kinds = [e.kind for e in events]
    assert summary.status == "completed" and summary.final_answer.startswith(SAME)
    assert "agent_error" not in kinds and "workflow_rejected" not in kinds
    # Phase 1: three first turns (one answer, two repeats = votes); phase 2: agent1 votes;
    # phase 3: the presentation.
    assert len([e for e in events if e.kind == "turn_started"]) == 5
    repeats = [e for e in events if e.kind == "vote_accepted" and e.same_answer]
    assert {e.label for e in repeats} == {"agent2", "agent3"}


async def test_an_always_failing_provider_holds_the_run_up_by_about_a_second(nats_url):
    fake = FakeOpenAIServer(token_delay=0.005, tokens=100).start()  # 0.5 s per response
    try:
        fake.behave("m1", study_agent(SAME, "agent1", presentation=SAME))
        fake.behave("m2", study_agent(OTHER, "agent1"))
        fake.behave("bad", lambda _request: error(500, "upstream exploded"))
        # Default worker retry settings: the failing agent retries as it would in production.
        async with _stack(nats_url, WorkerSettings(concurrency=8)) as nc:
            started = time.monotonic()
            healthy = await _run(nc, fake, ["m1", "m2"])
            healthy_time = time.monotonic() - started
            events: list = []
            started = time.monotonic()
            mixed = await _run(nc, fake, ["m1", "m2", "bad"], events)
            mixed_time = time.monotonic() - started
    finally:
        fake.stop()
    assert healthy.status == mixed.status == "completed"
    assert mixed.final_answer.startswith(SAME)
    assert [e.label for e in events if e.kind == "agent_excluded"] == ["agent3"]
    assert mixed_time <= healthy_time + 1.5, (healthy_time, mixed_time)


async def test_a_turn_every_worker_dies_on_fails_at_once_instead_of_at_its_timeout(
    nats_url, fake_model
):
    """Each worker that takes agent2's turns dies (or stalls) without a word; JetStream
    gives up after ``max_deliver`` deliveries. The orchestrator hears JetStream's advisory
    and fails the turn, so the run goes on with agent1 instead of waiting 600 s."""
    from massgen_kit.jetstream import StreamSettings, ensure_provider_consumer, ensure_turns_stream

    fake_model.behave("m1", study_agent(SAME, "agent1", presentation="Canberra."))
    services = await _replicas(nats_url, 2)
    worker = WorkerService(nats_url, ["chatcompletion"], fast_worker_settings())
    await worker.start()
    hole = await nats.connect(nats_url)  # the vllm "workers": take turns, never finish
    js = hole.jetstream()
    await ensure_turns_stream(js, StreamSettings(memory=True))
    durable = await ensure_provider_consumer(js, "vllm", ack_wait=1.0, max_deliver=2)
    pull = await js.pull_subscribe_bind(durable, stream="MASSGEN_TURNS")
    taken: list[str] = []

    async def swallow() -> None:
        while True:
            try:
                taken.extend(m.subject for m in await pull.fetch(1, timeout=0.5))
            except nats.errors.TimeoutError:
                pass

    hole_task = asyncio.create_task(swallow())
    nc = await nats.connect(nats_url)
    config = _team(fake_model, ["m1", "m2"])
    config["agents"][1]["backend"]["type"] = "vllm"
    events: list = []
    try:
        started = time.monotonic()
        summary = await asyncio.wait_for(
            follow_run(nc, "What is the capital of Australia?", config, events.append), 120
        )
        elapsed = time.monotonic() - started
    finally:
        hole_task.cancel()
        await pull.unsubscribe()
        await hole.close()
        await nc.drain()
        await worker.stop()
        for service in services:
            await service.stop()
    assert summary.status == "completed", summary
    # agent2 is in trouble from its first failed turn, so agent1's answer is not held
    # up for it: agent2 is left out once agent1 has voted.
    assert summary.winner == "a1" and summary.agents["a2"] == "left out", summary
    errors = [e for e in events if e.kind == "agent_error" and e.agent == "a2"]
    assert errors and "handed to workers 2 times" in errors[0].error, errors
    assert len(taken) >= 2  # the first turn, delivered twice, then given up on
    assert elapsed < 60

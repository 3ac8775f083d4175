"""Bounded JetStream: the events stream at its byte limit drops old chunks, turns go on."""

from __future__ import annotations

import nats
import pytest
from massgen_cli.client import follow_run
from massgen_orchestrator.service import OrchestratorService
from massgen_orchestrator.settings import OrchestratorSettings
from massgen_proto import subjects
from massgen_worker.service import WorkerService
from massgen_worker.settings import WorkerSettings

from tests.support.fakes.agents import study_agent
from tests.support.fakes.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.timeout(120)

LIMIT = 64 * 1024


async def test_a_full_events_stream_drops_old_chunks_while_turns_keep_flowing(
    nats_url, monkeypatch
):
    monkeypatch.setenv("MASSGEN_EVENTS_MAX_BYTES", str(LIMIT))
    fake = FakeOpenAIServer(tokens=300).start()  # 300 streamed pieces per response
    fake.behave("m1", study_agent("Canberra is the capital.", "agent1"))
    fake.behave("m2", study_agent("The capital is Canberra.", "agent1"))
    orchestrator = OrchestratorService(OrchestratorSettings(nats_url=nats_url, memory_streams=True))
    await orchestrator.start()
    worker = WorkerService(nats_url, ["chatcompletion"], WorkerSettings())
    await worker.start()
    nc = await nats.connect(nats_url)
    try:
        config = {"agents": [
            {"id": f"a{i}", "backend": {"type": "chatcompletion", "model": f"m{i}",
                                        "base_url": fake.base_url}} for i in (1, 2)
        ]}  # fmt: skip
        summaries = [await follow_run(nc, "Capital?", config, lambda _e: None) for _ in range(3)]
        info = await nc.jetstream().stream_info(subjects.EVENTS_STREAM)
    finally:
        await nc.drain()
        await worker.stop()
        await orchestrator.stop()
        fake.stop()
    assert [s.status for s in summaries] == ["completed"] * 3
    assert info.config.max_bytes == LIMIT
    assert info.state.bytes <= LIMIT
    assert info.state.first_seq > 1  # the oldest events went, the runs did not notice

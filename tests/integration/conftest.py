"""A whole MassGen-on-NATS stack in the test process: real nats-server, the orchestrator
service, a worker service, and the scripted fake model reached through litellm."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats
import pytest
from massgen_cli.client import follow_run
from massgen_orchestrator.service import OrchestratorService
from massgen_orchestrator.settings import OrchestratorSettings
from massgen_proto import events as ev
from massgen_proto.summary import RunSummary
from massgen_worker.service import WorkerService
from massgen_worker.settings import WorkerSettings
from nats.aio.client import Client

from tests.support.fakes.openai_server import FakeOpenAIServer


@dataclass
class Stack:
    nc: Client
    orchestrator: OrchestratorService
    workers: list[WorkerService]
    fake: FakeOpenAIServer
    nats_url: str
    events: list[Any] = field(default_factory=list)

    def team(self, models: list[str], **orchestrator: Any) -> dict[str, Any]:
        """A config with one chatcompletion agent per fake model name (ids a1, a2, ...)."""
        timeouts = {
            key: orchestrator.pop(key)
            for key in ("orchestrator_timeout_seconds", "turn_timeout_seconds")
            if key in orchestrator
        }
        config: dict[str, Any] = {
            "agents": [
                {
                    "id": f"a{i + 1}",
                    "backend": {
                        "type": "chatcompletion",
                        "model": model,
                        "base_url": self.fake.base_url,
                        "api_key": "sk-fake",
                    },
                }
                for i, model in enumerate(models)
            ],
            "orchestrator": orchestrator,
        }
        if timeouts:
            config["timeout_settings"] = timeouts
        return config

    async def run(self, question: str, config: dict[str, Any], **kwargs: Any) -> RunSummary:
        """Run to the end, collecting every event in ``self.events``."""
        self.events = []
        return await follow_run(self.nc, question, config, self.events.append, **kwargs)

    def kinds(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.kind == kind]


def fast_worker_settings(**overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        "provider_retries": 1,
        "graceful_timeout": 1.0,
        "fetch_timeout": 0.5,
    }
    values.update(overrides)
    return WorkerSettings(**values)


@pytest.fixture
async def stack(nats_url: str, fake_model: FakeOpenAIServer) -> AsyncIterator[Stack]:
    orchestrator = OrchestratorService(OrchestratorSettings(nats_url=nats_url, memory_streams=True))
    await orchestrator.start()
    worker = WorkerService(nats_url, ["chatcompletion"], fast_worker_settings())
    await worker.start()
    nc = await nats.connect(nats_url)
    try:
        yield Stack(nc, orchestrator, [worker], fake_model, nats_url)
    finally:
        await nc.drain()
        for w in [worker]:
            await w.stop()
        await orchestrator.stop()


__all__ = ["Stack", "ev", "fast_worker_settings"]

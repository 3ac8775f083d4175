"""Every service exports Prometheus metrics on its health port's ``/metrics``.

The orchestrator, the gateway and a worker run in this process (one registry, as each
would have in its own), a run with a tool call goes through, and a scrape over HTTP
shows the families of each service moving.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request

import nats
import pytest
from massgen_cli.client import follow_run
from massgen_gateway.service import GatewayService
from massgen_gateway.settings import GatewaySettings
from massgen_kit.health import HealthServer
from massgen_orchestrator.service import OrchestratorService
from massgen_orchestrator.settings import OrchestratorSettings
from massgen_worker.service import WorkerService
from massgen_worker.settings import WorkerSettings

from tests.support.fakes.openai_server import answer, error, text, tool_call, vote

pytestmark = pytest.mark.timeout(120)


def _value(text: str, family: str, **labels: str) -> float:
    """Sum of the samples of ``family`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{family}(\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


async def test_a_run_moves_every_services_metrics(nats_url, fake_model, tmp_path):
    orchestrator = OrchestratorService(OrchestratorSettings(nats_url=nats_url, memory_streams=True))
    (tmp_path / "home").mkdir()
    gateway = GatewayService(GatewaySettings(
        nats_url=nats_url, workspace_root=str(tmp_path / "runs"), home=str(tmp_path / "home"),
        memory_streams=True,
    ))  # fmt: skip
    worker = WorkerService(nats_url, ["chatcompletion"], WorkerSettings(fetch_timeout=0.5))
    health = await HealthServer(0, ready=lambda: True, host="127.0.0.1").start()
    for service in (orchestrator, gateway, worker):
        await service.start()
    nc = await nats.connect(nats_url)
    try:
        # Model names of this test only: the registry is per process, shared by tests.
        fake_model.script("metrics-m1", [
            tool_call("mcp__workspace__write_file", {"path": "a.md", "content": "x"}),
            answer("Done."), vote("agent1", "mine"), text("Final: done."),
        ])  # fmt: skip
        config = {"agents": [{"id": "a1", "backend": {
            "type": "chatcompletion", "model": "metrics-m1", "base_url": fake_model.base_url,
            "cwd": "ws"}}]}  # fmt: skip
        summary = await follow_run(nc, "Write a.", config, lambda _e: None)
        assert summary.status == "completed"
        # A bad key: retrying cannot help, the turn fails, and the class is counted.
        fake_model.script("metrics-m2", [error(401, "invalid api key")])
        config["agents"][0]["backend"]["model"] = "metrics-m2"
        config["orchestrator"] = {"max_agent_failures": 1}
        failed = await follow_run(nc, "Again.", config, lambda _e: None)
        assert failed.status == "failed"
        url = f"http://127.0.0.1:{health.port}/metrics"
        # In a thread: the health server answers on this test's event loop.
        scraped = await asyncio.to_thread(
            lambda: urllib.request.urlopen(url, timeout=10).read().decode()  # noqa: S310
        )
    finally:
        await nc.drain()
        for service in (worker, gateway, orchestrator):
            await service.stop()
        await health.stop()
    assert _value(scraped, "massgen_runs_total", status="completed") >= 1
    assert _value(scraped, "massgen_run_duration_seconds_count") >= 1
    assert _value(scraped, "massgen_verdicts_total", kind="workflow_submission",
                  status="accepted") >= 2  # fmt: skip
    assert _value(scraped, "massgen_turns_total", provider="chatcompletion",
                  outcome="presented") >= 1  # fmt: skip
    assert _value(scraped, "massgen_model_tokens_total", direction="completion") > 0
    # Four model calls with the first model (the tool call's, the answer's, the vote's,
    # the presentation's), each timed to its first piece and to its end.
    assert _value(scraped, "massgen_model_request_seconds_count", model="metrics-m1") == 4
    assert _value(scraped, "massgen_model_first_token_seconds_count", model="metrics-m1") == 4
    assert _value(scraped, "massgen_model_errors_total", provider="chatcompletion",
                  **{"class": "auth"}) >= 1  # fmt: skip
    assert _value(scraped, "massgen_tool_calls_total", server="workspace", outcome="ok") >= 1
    assert "# TYPE massgen_worker_inflight_turns gauge" in scraped
    assert "# TYPE massgen_pending_turns gauge" in scraped

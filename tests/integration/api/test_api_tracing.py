"""One OpenTelemetry trace per run, across the API, the orchestrator, a worker and the
gateway, carried in NATS message headers (W3C ``traceparent``).

The services run in this process (real NATS, real uvicorn); what connects their spans
is only what travels in the messages: a span's context never reaches another service
through Python's context variables here, because each service handles a message in
its own connection's tasks.
"""

from __future__ import annotations

import time

import pytest
from massgen_gateway.service import GatewayService
from massgen_gateway.settings import GatewaySettings
from massgen_kit import tracing
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.api_stack import LoopThread, read_sse, start_api_stack
from tests.support.fakes.openai_server import answer, text, tool_call, vote

pytestmark = pytest.mark.timeout(120)

WRITE = "mcp__workspace__write_file"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = tracing.provider_for("massgen-test")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)


def _script(fake) -> None:
    fake.script("m1", [
        tool_call(WRITE, {"path": "note.md", "content": "hello"}), answer("Wrote it."),
        vote("agent1", "done"), text("Final: wrote the note."),
    ])  # fmt: skip


def test_each_run_is_one_connected_trace_across_every_service(
    spans, tmp_path, nats_url, fake_model
):
    stack, stop = start_api_stack(tmp_path, nats_url, fake_model)
    gateway = GatewayService(GatewaySettings(
        nats_url=nats_url, workspace_root=str(tmp_path / "runs"), home=str(tmp_path),
        memory_streams=True,
    ))  # fmt: skip
    gateways = LoopThread("gateway")
    gateways.run(gateway.start())
    try:
        config = stack.config(["m1"])
        config["agents"][0]["backend"]["cwd"] = "ws"
        traces = []
        with stack.client() as client:
            for _ in range(2):
                _script(fake_model)
                created = client.post("/v1/runs", json={"question": "Note?", "config": config})
                run_id = created.json()["id"]
                with client.stream("GET", f"/v1/runs/{run_id}/events") as response:
                    read_sse(response)
                assert client.get(f"/v1/runs/{run_id}").json()["status"] == "completed"
                traces.append(_trace_of(spans, run_id))
    finally:
        gateways.run(gateway.stop())
        gateways.close()
        stop()
    first, second = traces
    assert first != second  # one trace per run


def _trace_of(exporter: InMemorySpanExporter, run_id: str) -> int:
    """The run's trace id, once its three turns' spans are in; checks it is connected."""
    deadline = time.monotonic() + 10
    while True:
        created = [s for s in exporter.get_finished_spans()
                   if s.name == "run.create" and s.attributes.get("run_id") == run_id]  # fmt: skip
        trace_id = created[0].context.trace_id if created else None
        mine = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
        if sum(s.name == "turn" for s in mine) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    names = [s.name for s in mine]
    for expected in (
        "run.create",
        "orchestrator.create",
        "orchestrator.report",
        "turn",
        "model.call",
        "gateway.call",
        "gateway.serve.call",
        "gateway.list",
    ):
        assert expected in names, (expected, sorted(set(names)))
    assert names.count("turn") == 3  # answer, vote, presentation
    assert {s.attributes.get("run_id") for s in mine if "run_id" in s.attributes} == {run_id}
    services = {s.resource.attributes.get("service.name") for s in mine}
    assert services == {"massgen-test"}
    ids = {s.context.span_id for s in mine}
    roots = [s for s in mine if s.parent is None]
    assert [s.name for s in roots] == ["run.create"]
    assert all(s.parent.span_id in ids for s in mine if s.parent is not None), names
    # A report is the child of the worker's turn span that sent it.
    by_id = {s.context.span_id: s for s in mine}
    reports = [s for s in mine if s.name == "orchestrator.report"]
    assert all(by_id[s.parent.span_id].name == "turn" for s in reports)
    return trace_id

"""One OpenTelemetry trace per run, across the API, the orchestrator, a worker and the
gateway, carried in NATS message headers (W3C ``traceparent``).

The services run in this process (real NATS, real uvicorn); what connects their spans
is only what travels in the messages: a span's context never reaches another service
through Python's context variables here, because each service handles a message in
its own connection's tasks.
"""

from __future__ import annotations

import time

import nats
import pytest
from massgen_gateway.service import GatewayService
from massgen_gateway.settings import GatewaySettings
from massgen_kit import tracing
from massgen_proto import subjects
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)

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
    gateway = _gateway(tmp_path, nats_url)
    try:
        traces = []
        with stack.client() as client:
            for _ in range(2):
                run_id = _run(client, stack, fake_model)
                traces.append(_trace_of(spans, run_id))
    finally:
        gateway.close()
        stop()
    first, second = traces
    assert first != second  # one trace per run


class _EverySecondRun(Sampler):
    """Records the 2nd, 4th... trace started (the SDK asks a root sampler only where a
    trace starts: here, the API's ``run.create``)."""

    def __init__(self) -> None:
        self.asked = 0

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None) -> SamplingResult:  # fmt: skip
        self.asked += 1
        if self.asked % 2:
            return SamplingResult(Decision.DROP, None, trace_state)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)

    def get_description(self) -> str:
        return "EverySecondRun"


class _Started(SpanProcessor):
    """Counts the spans the SDK started (it starts only the spans it records)."""

    def __init__(self) -> None:
        self.started = 0

    def on_start(self, span, parent_context=None) -> None:
        self.started += 1


def test_a_run_left_out_makes_no_spans_and_a_sampled_one_stays_whole(
    tmp_path, nats_url, fake_model
):
    root = _EverySecondRun()
    resource = tracing.provider_for("massgen-test").resource
    provider = TracerProvider(sampler=ParentBased(root), resource=resource)
    exporter, started = InMemorySpanExporter(), _Started()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(started)
    tracing.install(provider)
    stack, stop = start_api_stack(tmp_path, nats_url, fake_model)
    gateway = _gateway(tmp_path, nats_url)
    seen: list[tuple[str, str]] = []  # (subject, traceparent) of every message on NATS

    async def watch(msg) -> None:
        if msg.headers and tracing.TRACEPARENT in msg.headers:
            seen.append((msg.subject, msg.headers[tracing.TRACEPARENT]))

    tap = stack.services.run(nats.connect(nats_url))
    stack.services.run(tap.subscribe(">", cb=watch))
    try:
        with stack.client() as client:
            _run(client, stack, fake_model)  # left out by the sampler
            stack.services.run(tap.flush())
            assert root.asked == 1 and started.started == 0
            assert exporter.get_finished_spans() == ()
            # Only the create request says "not sampled" (so the orchestrator does not
            # start a trace of its own); turn requests, reports and tool calls carry nothing.
            assert [subject for subject, _ in seen] == [subjects.SUBMIT_CREATE]
            assert not int(seen[0][1][-2:], 16) & 1  # the "sampled" flag is off
            seen.clear()
            run_id = _run(client, stack, fake_model)  # sampled
            trace_id = _trace_of(exporter, run_id)
            stack.services.run(tap.flush())
    finally:
        stack.services.run(tap.close())
        gateway.close()
        stop()
        tracing.install(None)
    assert root.asked == 2
    assert started.started == len(exporter.get_finished_spans())
    carried = {subject for subject, _ in seen}
    assert {subjects.SUBMIT_CREATE, subjects.GATEWAY_TOOLS_CALL} <= carried
    # Reports go to the replica that published their turn (any replica if it is gone).
    reports = {
        subjects.SUBMIT_REPORT,
        *(s for s in carried if s.startswith(subjects.SUBMIT_REPORT)),
    }
    assert reports & carried, carried
    assert any(subject.startswith(f"{subjects.PREFIX}.turns.") for subject in carried), carried
    assert {value[3:35] for _, value in seen} == {f"{trace_id:032x}"}


class _Gateway:
    """The mcp-gateway on a loop of its own."""

    def __init__(self, service: GatewayService) -> None:
        self.service, self.loop = service, LoopThread("gateway")
        self.loop.run(service.start())

    def close(self) -> None:
        self.loop.run(self.service.stop())
        self.loop.close()


def _gateway(tmp_path, nats_url: str) -> _Gateway:
    return _Gateway(GatewayService(GatewaySettings(
        nats_url=nats_url, workspace_root=str(tmp_path / "runs"), home=str(tmp_path),
        memory_streams=True,
    )))  # fmt: skip


def _run(client, stack, fake_model) -> str:
    """One run through the API (a tool call, an answer, a vote, the presentation), to its
    end; its id."""
    config = stack.config(["m1"])
    config["agents"][0]["backend"]["cwd"] = "ws"
    _script(fake_model)
    created = client.post("/v1/runs", json={"question": "Note?", "config": config})
    run_id = created.json()["id"]
    with client.stream("GET", f"/v1/runs/{run_id}/events") as response:
        read_sse(response)
    assert client.get(f"/v1/runs/{run_id}").json()["status"] == "completed"
    return run_id


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
    # Bookkeeping reports (turn started, late usage) make no spans.
    assert {s.attributes["report"] for s in reports} == {
        "workflow_submission",
        "presentation_finished",
    }
    return trace_id

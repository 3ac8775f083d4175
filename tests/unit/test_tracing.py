"""``massgen_kit.tracing``: W3C ``traceparent`` in and out, the sampler the standard
variables name, errors on spans, and nothing at all with tracing off."""

from __future__ import annotations

import pytest
from massgen_kit import tracing
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


@pytest.fixture
def spans(monkeypatch):
    """Tracing on with an in-memory exporter; the sampler from the environment."""

    def install(**env: str) -> InMemorySpanExporter:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        exporter = InMemorySpanExporter()
        provider = tracing.provider_for("massgen-test")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing.install(provider)
        return exporter

    try:
        yield install
    finally:
        tracing.install(None)


def test_off_everything_is_a_no_op():
    tracing.install(None)
    assert not tracing.enabled()
    with tracing.span("x", {"traceparent": PARENT}, run_id="r") as current:
        assert current is None
        assert tracing.headers() is None
        assert tracing.headers({"Nats-Msg-Id": "a"}) == {"Nats-Msg-Id": "a"}
        assert tracing.traceparent() == ""
        assert tracing.current_ids() is None
    assert tracing.flush()


def test_a_span_continues_the_trace_in_the_carrier_and_hands_its_own_on(spans):
    exporter = spans()
    with tracing.span("turn", {"traceparent": PARENT}, run_id="r1", skipped=None) as turn:
        sent = tracing.headers({"Nats-Msg-Id": "m"})
        with tracing.span("model.call", model="m1"):
            inner = tracing.current_ids()
    call, turn_span = exporter.get_finished_spans()  # in the order they ended
    assert turn_span.name == "turn" and turn_span.context.trace_id == int(PARENT[3:35], 16)
    assert turn_span.parent.span_id == int(PARENT[36:52], 16) and turn_span.parent.is_remote
    assert dict(turn_span.attributes) == {"run_id": "r1"}  # None values are left out
    assert call.parent.span_id == turn_span.context.span_id
    ctx = turn.get_span_context()
    assert sent == {
        "Nats-Msg-Id": "m",
        "traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}",
    }
    assert inner == (f"{ctx.trace_id:032x}", f"{call.context.span_id:016x}")
    # What one service sent, the next continues: one trace.
    with tracing.span("orchestrator.report", sent):
        pass
    report = exporter.get_finished_spans()[-1]
    assert report.context.trace_id == ctx.trace_id and report.parent.span_id == ctx.span_id


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "garbage",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
    ],
)
def test_a_carrier_without_a_valid_traceparent_starts_a_trace_of_its_own(spans, bad):
    exporter = spans()
    with tracing.span("orchestrator.create", {"traceparent": bad}):
        pass
    (created,) = exporter.get_finished_spans()
    assert created.parent is None and created.context.trace_id != int(PARENT[3:35], 16)


def test_a_later_version_is_read_by_its_version_00_fields(spans):
    exporter = spans()
    with tracing.span("x", {"traceparent": "cc-" + PARENT[3:] + "-what-comes-later"}):
        pass
    (found,) = exporter.get_finished_spans()
    assert found.context.trace_id == int(PARENT[3:35], 16)


def test_a_parent_seen_before_is_not_parsed_again(spans):
    spans()
    for _ in range(3):
        with tracing.span("orchestrator.report", {"traceparent": PARENT}):
            pass
    assert list(tracing._parents) == [PARENT]


def test_the_sampler_comes_from_the_standard_variables_and_whole_runs_are_kept_or_left(spans):
    exporter = spans(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    with tracing.span("run.create") as root:
        assert not root.is_recording()
        sent = tracing.headers()
    assert sent is not None and not int(sent["traceparent"][-2:], 16) & 1  # "not sampled" travels
    with tracing.span("turn", sent) as turn:
        assert not turn.is_recording()
    with tracing.span("turn", {"traceparent": UNSAMPLED}) as turn:
        assert not turn.is_recording()
    with tracing.span("turn", {"traceparent": PARENT}):  # a sampled run stays whole
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["turn"]


def test_an_error_in_a_span_marks_it_and_goes_on(spans):
    exporter = spans()
    with pytest.raises(ValueError, match="boom"), tracing.span("gateway.call"):
        raise ValueError("boom")
    (failed,) = exporter.get_finished_spans()
    assert failed.status.status_code.name == "ERROR"
    assert failed.status.description == "ValueError: boom"
    assert [e.name for e in failed.events] == ["exception"]
    assert tracing.traceparent() == ""  # the span's context is gone again


def test_log_lines_in_a_span_carry_its_trace_and_span_ids(spans):
    import io
    import json

    import structlog
    from massgen_kit.logsetup import configure_logging

    spans()
    stream = io.StringIO()
    saved = structlog.get_config()
    configure_logging("info", stream)
    try:
        log = structlog.get_logger()
        with tracing.span("turn") as turn:
            log.info("inside")
        log.info("outside")
    finally:
        structlog.configure(**saved)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    ctx = turn.get_span_context()
    assert (inside["trace_id"], inside["span_id"]) == (
        f"{ctx.trace_id:032x}",
        f"{ctx.span_id:016x}",
    )
    assert "trace_id" not in outside

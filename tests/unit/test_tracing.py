"""``massgen_kit.tracing``: W3C ``traceparent`` in and out, the sampler the standard
variables name (asked only where a run enters), errors on spans, and nothing at all with
tracing off or for a trace the sampler left out."""

from __future__ import annotations

import pytest
from massgen_kit import tracing
from opentelemetry.sdk.trace import SpanProcessor
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
    with tracing.start_trace("orchestrator.create", {"traceparent": bad}):
        # Elsewhere such a carrier continues the current span, as one without a value.
        with tracing.span("orchestrator.report", {"traceparent": bad}):
            pass
    report, created = exporter.get_finished_spans()
    assert created.parent is None and created.context.trace_id != int(PARENT[3:35], 16)
    assert report.parent.span_id == created.context.span_id
    with tracing.span("orchestrator.report", {"traceparent": bad}) as outside:
        assert outside is None  # no trace to continue: only start_trace starts one
    assert len(exporter.get_finished_spans()) == 2


def test_only_start_trace_starts_a_trace(spans):
    exporter = spans()
    with tracing.span("turn", {"Nats-Msg-Id": "m"}, run_id="r") as turn:
        assert turn is None
        assert tracing.headers() is None
        assert tracing.headers({"Nats-Msg-Id": "m"}) == {"Nats-Msg-Id": "m"}
        assert tracing.traceparent() == "" and tracing.current_ids() is None
        tracing.set_attributes(first_token_s=0.1)  # nothing to set it on
    assert exporter.get_finished_spans() == ()


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
    with tracing.start_trace("run.create") as root:
        assert not root.is_recording()
        sent = tracing.headers()
        with tracing.span("model.call") as inner:
            assert inner is None  # nothing under a root left out
    # "Not sampled" travels one hop, so the next service does not start a trace of its own.
    assert sent is not None and not int(sent["traceparent"][-2:], 16) & 1
    with tracing.start_trace("orchestrator.create", sent) as created:
        assert created is None
        assert tracing.traceparent() == ""  # nothing for its turn requests to carry
    with tracing.start_trace("orchestrator.create") as created:  # a run not from the API
        assert not created.is_recording()
        assert tracing.traceparent() == ""
    with tracing.span("turn", {"traceparent": UNSAMPLED}) as turn:
        assert turn is None
    with tracing.span("turn", {"traceparent": PARENT}):  # a sampled run stays whole
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["turn"]


class _Started(SpanProcessor):
    """Counts the spans the SDK started (it starts only the ones it records)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span, parent_context=None) -> None:
        self.started.append(span.name)


def test_a_run_left_out_makes_no_span_objects_and_sends_no_context(spans, monkeypatch):
    exporter = spans(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    counter = _Started()
    tracing._provider.add_span_processor(counter)
    made: list[str] = []
    monkeypatch.setattr(tracing, "_Span", _counting(tracing._Span, made))
    # One run as the services see it, hop by hop (see the module's docstring).
    with tracing.start_trace("run.create", run_id="r"):
        create = tracing.headers()
    with tracing.start_trace("orchestrator.create", create, run_id="r"):
        stored = tracing.traceparent()
    turn_request = {"Nats-Msg-Id": "r:1:0", **({"traceparent": stored} if stored else {})}
    with tracing.span("turn", turn_request, agent="a1"):
        with tracing.span("model.call", model="m1", call=1):
            tracing.set_attributes(first_token_s=0.2)
        report = tracing.headers()
        gateway = tracing.headers()
    with tracing.span("orchestrator.report", report), tracing.span("gateway.serve.call", gateway):
        pass
    assert made == ["run.create"]  # the sampler's one decision, at the entry
    assert (stored, report, gateway) == ("", None, None)
    assert counter.started == [] and exporter.get_finished_spans() == ()


def _counting(cls: type, made: list[str]) -> type:
    class Counting(cls):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def __init__(self, name: str, parent: object, attributes: dict) -> None:
            made.append(name)
            super().__init__(name, parent, attributes)

    return Counting


def test_a_recorded_model_call_gets_attributes_set_mid_span(spans):
    exporter = spans()
    with tracing.span("model.call", {"traceparent": PARENT}, model="m1"):
        tracing.set_attributes(first_token_s=0.25)
    (call,) = exporter.get_finished_spans()
    assert dict(call.attributes) == {"model": "m1", "first_token_s": 0.25}


def test_an_error_in_a_span_marks_it_and_goes_on(spans):
    exporter = spans()
    with pytest.raises(ValueError, match="boom"), tracing.start_trace("gateway.call"):
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
        with tracing.start_trace("turn") as turn:
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

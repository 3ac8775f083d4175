"""OpenTelemetry traces across NATS hops: one trace per run, off by default.

On when the standard variables ask for it (``OTEL_TRACES_EXPORTER`` = ``otlp`` or
``console``, or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT``; never with
``OTEL_SDK_DISABLED=true``); the OTLP exporter reads its own ``OTEL_*`` settings, the
sampler ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default: parent-based,
always on; ``parentbased_traceidratio`` keeps a share of the runs, whole) and the batch
processor ``OTEL_BSP_*``. The context travels in NATS message headers as W3C
``traceparent``: the API's create starts the trace, the orchestrator keeps the run's
context in the run state (any replica continues it), turn requests carry it to workers,
and reports and gateway requests carry the turn's span back.

Off, every function here is a no-op that imports nothing: processes pay for tracing
only when it is asked for. On, a span costs what the SDK needs to record it and little
more: ``traceparent`` is read and written here directly (W3C format, the one
propagator this system uses) rather than through the global propagators, a parent
seen before is not parsed again, and spans go to the exporter in batches from the SDK's
own thread. Spans are few and coarse: per run, per report, per turn, per model call
(never per streamed piece) and per gateway request.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "configure",
    "current_ids",
    "enabled",
    "flush",
    "headers",
    "install",
    "provider_for",
    "span",
    "traceparent",
]

TRACEPARENT = "traceparent"

_tracer: Any = None
"""The tracer when tracing is on, else None."""
_provider: Any = None
"""The tracer provider when tracing is on (to flush it), else None."""

_PARENT_CACHE_SIZE = 4096
_parents: dict[str, Any] = {}
"""``traceparent`` value → the OpenTelemetry context it names: a run's turn requests all
carry the run's, a turn's reports its turn's; each is parsed once."""
_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""Version 00's layout; a later version starts the same way (and may append fields)."""

# Set with tracing on (imports kept out of processes with tracing off).
_attach: Any = None
_detach: Any = None
_set_span: Any = None
_current_span: Any = None
_remote_context: Any = None
_error_status: Any = None


def _asked_for(env: Mapping[str, str]) -> str | None:
    """Which exporter the environment asks for (``otlp`` / ``console``), or None."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in ("otlp", "console"):
        return exporter
    if exporter == "none":
        return None
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return "otlp"
    return None


def configure(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on for this process if the environment asks for it; True when on."""
    exporter = _asked_for(os.environ if env is None else env)
    if exporter is None:
        return False
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        span_exporter: Any = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    provider = provider_for(service)
    # Queue, batch size and delay from OTEL_BSP_* (SDK defaults: 2048 spans queued, sent
    # 512 at a time or every 5 s): the exporter's work stays off the services' tasks.
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    install(provider)
    return True


def provider_for(service: str) -> Any:
    """An SDK tracer provider naming ``service`` (``OTEL_SERVICE_NAME`` wins); its sampler
    is the one ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` name."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    )


def install(provider: Any | None) -> None:
    """Use ``provider`` (an SDK ``TracerProvider``) for this process's spans; None turns
    tracing off. Tests install one with an in-memory exporter."""
    global _tracer, _provider, _attach, _detach, _set_span, _current_span, _remote_context
    global _error_status
    _parents.clear()
    if provider is None:
        _tracer = _provider = None
        return
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    def remote_context(trace_id: int, span_id: int, flags: int) -> Any:
        parent = trace.SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags)
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(parent), otel_context.Context())

    def error_status(error: BaseException) -> Any:
        return trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")

    _attach, _detach = otel_context.attach, otel_context.detach
    _set_span, _current_span = trace.set_span_in_context, trace.get_current_span
    _remote_context, _error_status = remote_context, error_status
    _provider = provider
    _tracer = provider.get_tracer("massgen")


def enabled() -> bool:
    return _tracer is not None


def flush(timeout_millis: int = 30_000) -> bool:
    """Send the spans still queued (True when done, or when tracing is off)."""
    return True if _provider is None else bool(_provider.force_flush(timeout_millis))


def _parent(value: str) -> Any:
    """The context a ``traceparent`` value names (None when it is not a valid one)."""
    found = _parents.get(value)
    if found is not None:
        return found
    match = _TRACEPARENT_RE.match(value)
    if match is None or match[1] == "ff" or (len(value) > 55 and value[55] != "-"):
        return None
    if match[1] == "00" and len(value) != 55:
        return None
    trace_id, span_id = int(match[2], 16), int(match[3], 16)
    if not (trace_id and span_id):
        return None
    found = _remote_context(trace_id, span_id, int(match[4], 16))
    if len(_parents) >= _PARENT_CACHE_SIZE:
        _parents.clear()
    _parents[value] = found
    return found


class _Off:
    """``span`` with tracing off: enters to None, costs nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_OFF = _Off()


class _Span:
    """``span`` with tracing on: starts the span on entry, the current one until exit."""

    __slots__ = ("_attributes", "_carrier", "_name", "_span", "_token")

    def __init__(self, name: str, carrier: Mapping[str, str] | None, attributes: dict) -> None:
        self._name, self._carrier, self._attributes = name, carrier, attributes
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Any:
        carrier = self._carrier
        value = carrier.get(TRACEPARENT) if carrier else None
        parent = _parent(value) if value else None
        attributes = {k: v for k, v in self._attributes.items() if v is not None}
        current = self._span = _tracer.start_span(self._name, parent, attributes=attributes)
        self._token = _attach(_set_span(current, parent))
        return current

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        current = self._span
        _detach(self._token)
        if isinstance(error, Exception) and current.is_recording():
            current.record_exception(error)
            current.set_status(_error_status(error))
        current.end()


def span(
    name: str, carrier: Mapping[str, str] | None = None, **attributes: Any
) -> contextlib.AbstractContextManager[Any]:
    """A span (``with tracing.span(...) as current``), the child of the context in
    ``carrier`` (message headers) when it holds one, else of the current span. Enters to
    the span: None when tracing is off, a span that does not record when the sampler
    left this trace out. Attributes that are None are left out."""
    if _tracer is None:
        return _OFF
    return _Span(name, carrier, attributes)


def traceparent() -> str:
    """The current span's ``traceparent`` ("" when tracing is off or no span is on)."""
    if _tracer is None:
        return ""
    ctx = _current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags & 0xFF:02x}"


def headers(base: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``base`` plus the current span's ``traceparent`` (None when there is nothing)."""
    out = dict(base) if base else {}
    if _tracer is not None:
        value = traceparent()
        if value:
            out[TRACEPARENT] = value
    return out or None


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log lines; None without one."""
    if _tracer is None:
        return None
    ctx = _current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

"""OpenTelemetry traces across NATS hops: one trace per run, off by default.

On when the standard variables ask for it (``OTEL_TRACES_EXPORTER`` = ``otlp`` or
``console``, or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT``; never with
``OTEL_SDK_DISABLED=true``); the OTLP exporter reads its own ``OTEL_*`` settings, the
sampler ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default: parent-based,
always on; ``parentbased_traceidratio`` keeps a share of the runs, whole) and the batch
processor ``OTEL_BSP_*``. The context travels in NATS message headers as W3C
``traceparent``: the API's create starts the trace (``start_trace``), the orchestrator
keeps the run's context in the run state (any replica continues it), turn requests
carry it to workers, and the reports and gateway requests worth a span carry the
turn's span back.

Only ``start_trace`` (where a run enters the system) asks the sampler; every other
``span`` continues a recorded trace or does nothing. So a run the sampler left out
costs one decision: no span objects further on, and no ``traceparent`` on its turn
requests, reports or gateway requests (the one hop after the decision, API to
orchestrator, carries it as "not sampled" so the orchestrator does not start a trace
of its own).

Off, every function here is a no-op that imports nothing: processes pay for tracing
only when it is asked for. On, a recorded span costs what the SDK needs to record it
and little more: ``traceparent`` is read and written here directly (W3C format, the
one propagator this system uses) rather than through the global propagators, a parent
seen before is not parsed again, a span's own value is formatted once and only when
asked for, and spans go to the exporter in batches from the SDK's own thread. Spans
are few and coarse: per run, per traced report, per turn, per model call (never per
streamed piece) and per gateway request.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

__all__ = [
    "configure",
    "current_ids",
    "enabled",
    "flush",
    "headers",
    "install",
    "provider_for",
    "set_attributes",
    "span",
    "start_trace",
    "traceparent",
]

TRACEPARENT = "traceparent"

_tracer: Any = None
"""The tracer when tracing is on, else None."""
_provider: Any = None
"""The tracer provider when tracing is on (to flush it), else None."""

_PARENT_CACHE_SIZE = 4096
_parents: dict[str, Any] = {}
"""``traceparent`` value → the OpenTelemetry context it names (``_UNSAMPLED`` for a
trace not recorded): a run's turn requests all carry the run's, a turn's reports its
turn's; each is parsed once."""
_UNSAMPLED: Any = object()
"""What ``_parent`` returns for a valid ``traceparent`` whose sampled flag is off."""
_active: ContextVar[_Span | None] = ContextVar("massgen_tracing_span", default=None)
"""This module's current span (None outside them): one lookup tells whether there is a
trace to continue and what ``traceparent`` to send, without the OpenTelemetry context."""
_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""Version 00's layout; a later version starts the same way (and may append fields)."""

# Set with tracing on (imports kept out of processes with tracing off).
_attach: Any = None
_detach: Any = None
_set_span: Any = None
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

    class HashedOnce(Resource):
        """A resource (immutable) that computes its hash once: the OTLP encoder groups the
        spans it sends by resource, and the SDK's hash is a JSON dump of the attributes,
        made again for every span."""

        def __hash__(self) -> int:
            found: int | None = self.__dict__.get("_hash")
            if found is None:
                found = self.__dict__["_hash"] = super().__hash__()
            return found

    named = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    return TracerProvider(resource=HashedOnce(named.attributes, named.schema_url))


def install(provider: Any | None) -> None:
    """Use ``provider`` (an SDK ``TracerProvider``) for this process's spans; None turns
    tracing off. Tests install one with an in-memory exporter."""
    global _tracer, _provider, _attach, _detach, _set_span, _remote_context
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
    _set_span = trace.set_span_in_context
    _remote_context, _error_status = remote_context, error_status
    _provider = provider
    _tracer = provider.get_tracer("massgen")


def enabled() -> bool:
    return _tracer is not None


def flush(timeout_millis: int = 30_000) -> bool:
    """Send the spans still queued (True when done, or when tracing is off)."""
    return True if _provider is None else bool(_provider.force_flush(timeout_millis))


def _parent(value: str) -> Any:
    """The context a ``traceparent`` value names: ``_UNSAMPLED`` when its trace is not
    recorded, None when it is not a valid one."""
    found = _parents.get(value)
    if found is not None:
        return found
    match = _TRACEPARENT_RE.match(value)
    if match is None or match[1] == "ff" or (len(value) > 55 and value[55] != "-"):
        return None
    if match[1] == "00" and len(value) != 55:
        return None
    trace_id, span_id, flags = int(match[2], 16), int(match[3], 16), int(match[4], 16)
    if not (trace_id and span_id):
        return None
    found = _remote_context(trace_id, span_id, flags) if flags & 1 else _UNSAMPLED
    if len(_parents) >= _PARENT_CACHE_SIZE:
        _parents.clear()
    _parents[value] = found
    return found


class _Off:
    """``span`` with no span to make (tracing off, or no recorded trace to continue):
    enters to None, costs nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_OFF = _Off()


class _Span:
    """A span made by this module: started on entry, the current one until exit."""

    __slots__ = (
        "_active", "_attributes", "_name", "_parent", "_span", "_token", "_value", "recorded",
    )  # fmt: skip

    def __init__(self, name: str, parent: Any, attributes: dict[str, Any]) -> None:
        self._name, self._parent, self._attributes = name, parent, attributes
        self._span: Any = None
        self._token: Any = None
        self._active: Any = None
        self._value = ""
        self.recorded = False  # False: the sampler left this span's trace out

    def __enter__(self) -> Any:
        attributes = self._attributes
        if None in attributes.values():
            attributes = {k: v for k, v in attributes.items() if v is not None}
        current = self._span = _tracer.start_span(self._name, self._parent, attributes=attributes)
        self.recorded = current.is_recording()
        # The OpenTelemetry context too, so that other instrumentation sees the span.
        self._token = _attach(_set_span(current, self._parent))
        self._active = _active.set(self)
        return current

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        current = self._span
        try:
            _active.reset(self._active)
        except ValueError:
            pass  # left in another context than it was entered in: tracing must not fail
        _detach(self._token)
        if isinstance(error, Exception) and self.recorded:
            current.record_exception(error)
            current.set_status(_error_status(error))
        current.end()

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self._span.set_attributes(attributes)

    @property
    def traceparent(self) -> str:
        """This span's ``traceparent``, formatted the first time it is asked for."""
        if not self._value:
            ctx = self._span.get_span_context()
            flags = ctx.trace_flags & 0xFF
            self._value = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}"
        return self._value


def span(
    name: str, carrier: Mapping[str, str] | None = None, **attributes: Any
) -> contextlib.AbstractContextManager[Any]:
    """A span (``with tracing.span(...) as current``) that continues a recorded trace:
    the child of the context in ``carrier`` (message headers) when it holds a valid
    one, else of the current span. Enters to the span, or to None with no span made:
    tracing off, a trace not recorded, or no trace to continue (only ``start_trace``
    starts one). Attributes that are None are left out."""
    if _tracer is None:
        return _OFF
    value = carrier.get(TRACEPARENT) if carrier else None
    if value:
        parent = _parent(value)
        if parent is _UNSAMPLED:
            return _OFF
        if parent is not None:
            return _Span(name, parent, attributes)
    active = _active.get()
    if active is None or not active.recorded:
        return _OFF
    return _Span(name, None, attributes)


def start_trace(
    name: str, carrier: Mapping[str, str] | None = None, **attributes: Any
) -> contextlib.AbstractContextManager[Any]:
    """The span where a run enters the system: it continues the trace in ``carrier``
    (recorded or not, as decided upstream), else starts a trace, or joins the current
    span, as the sampler decides. Enters to the span (one that does not record when the
    sampler left the trace out: its ``headers`` still say so to the next hop), or to
    None when tracing is off or the carrier's trace is not recorded."""
    if _tracer is None:
        return _OFF
    value = carrier.get(TRACEPARENT) if carrier else None
    parent = _parent(value) if value else None
    if parent is _UNSAMPLED:
        return _OFF
    return _Span(name, parent, attributes)


def set_attributes(**attributes: Any) -> None:
    """Add attributes to the current span when it is recorded (e.g. a model call's time
    to first token, known only mid-span); nothing otherwise."""
    active = _active.get()
    if active is not None and active.recorded:
        active.set_attributes(attributes)


def traceparent() -> str:
    """The current span's ``traceparent`` when it is recorded (to continue its trace
    later), else "": a trace not recorded needs no context downstream."""
    active = _active.get()
    return active.traceparent if active is not None and active.recorded else ""


def headers(base: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``base`` plus the current span's ``traceparent`` (None when there is nothing).
    Outside any span this is only a copy of ``base``."""
    active = _active.get()
    if active is None:
        return dict(base) if base else None
    out = dict(base) if base else {}
    out[TRACEPARENT] = active.traceparent
    return out


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log lines; None without one."""
    active = _active.get()
    if active is None:
        return None
    value = active.traceparent
    return value[3:35], value[36:52]

"""OpenTelemetry traces across NATS hops: one trace per run, off by default.

On when the standard variables ask for it (``OTEL_TRACES_EXPORTER`` = ``otlp`` or
``console``, or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``..._TRACES_ENDPOINT``; never with
``OTEL_SDK_DISABLED=true``); the OTLP exporter reads its own ``OTEL_*`` settings. The
context travels in NATS message headers as W3C ``traceparent``: the API's create starts
the trace, the orchestrator keeps the run's context in the run state (any replica
continues it), turn requests carry it to workers, and reports and gateway requests
carry the turn's span back.

Off, every function here is a no-op that imports nothing: processes pay for tracing
only when it is asked for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "configure",
    "current_ids",
    "enabled",
    "headers",
    "install",
    "provider_for",
    "span",
    "traceparent",
]

_tracer: Any = None
"""The tracer when tracing is on, else None."""

TRACEPARENT = "traceparent"


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
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    install(provider)
    return True


def provider_for(service: str) -> Any:
    """An SDK tracer provider naming ``service`` (``OTEL_SERVICE_NAME`` wins)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    )


def install(provider: Any | None) -> None:
    """Use ``provider`` (an SDK ``TracerProvider``) for this process's spans; None turns
    tracing off. Tests install one with an in-memory exporter."""
    global _tracer
    _tracer = provider.get_tracer("massgen") if provider is not None else None


def enabled() -> bool:
    return _tracer is not None


@contextlib.contextmanager
def span(name: str, carrier: Mapping[str, str] | None = None, **attributes: Any) -> Iterator[Any]:
    """A span, the child of the context in ``carrier`` (message headers) when it holds
    one, else of the current span. Yields the span (None when tracing is off)."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import context as otel_context
    from opentelemetry.propagate import extract

    parent = extract(dict(carrier)) if carrier and TRACEPARENT in carrier else None
    token = otel_context.attach(parent) if parent is not None else None
    try:
        attrs = {k: v for k, v in attributes.items() if v is not None}
        with _tracer.start_as_current_span(name, attributes=attrs) as current:
            yield current
    finally:
        if token is not None:
            otel_context.detach(token)


def headers(base: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``base`` plus the current span's ``traceparent`` (None when there is nothing)."""
    out = dict(base or {})
    if _tracer is not None:
        from opentelemetry.propagate import inject

        inject(out)
    return out or None


def traceparent() -> str:
    """The current span's ``traceparent`` ("" when tracing is off or no span is on)."""
    found = headers() or {}
    return found.get(TRACEPARENT, "")


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log lines; None without one."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

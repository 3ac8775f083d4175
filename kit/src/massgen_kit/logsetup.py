"""structlog JSON logging, configured the same way by every service."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

from . import tracing

__all__ = ["configure_logging"]


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send structlog JSON lines (with ISO timestamps) to ``stream`` (stderr by default).

    Services bind ``run_id`` / ``agent`` / ``turn`` on their loggers; payload text stays
    out of the logs (sizes and kinds only).
    """
    import structlog

    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def _trace_ids(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add the current span's ``trace_id`` / ``span_id`` (when tracing is on)."""
    ids = tracing.current_ids()  # None at once with tracing off
    if ids is not None:
        event["trace_id"], event["span_id"] = ids
    return event

"""What llama.cpp reports about each completion it ran for one proxied request.

llama.cpp ends a stream with ``timings``: prompt tokens read (``prompt_n``), prompt tokens
reused from its cache (``cache_n``), tokens written (``predicted_n``) and the time each
took. A proxied request may be several upstream completions (text, then the call); their
sums go on the request's log line, so slow runs show whether the prompt cache helped.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["collecting", "fields", "note", "note_tail"]

_KEYS = ("prompt_n", "cache_n", "predicted_n", "prompt_ms", "predicted_ms")
_steps: ContextVar[list[dict[str, Any]] | None] = ContextVar("llama_timings", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[list[dict[str, Any]]]:
    """Collect the timings of the completions run while this is open (one request)."""
    steps: list[dict[str, Any]] = []
    token = _steps.set(steps)
    try:
        yield steps
    finally:
        _steps.reset(token)


def note(chunk: dict[str, Any]) -> None:
    """Record a streamed chunk's ``timings``, if it has them."""
    found = chunk.get("timings")
    steps = _steps.get()
    if isinstance(found, dict) and steps is not None:
        steps.append(found)


def note_tail(tail: bytes) -> None:
    """Record the timings in the last ``data:`` line of a relayed stream's tail."""
    for line in reversed(tail.split(b"\n")):
        if line.startswith(b"data: {") and b'"timings"' in line:
            with contextlib.suppress(ValueError):
                note(json.loads(line[6:]))
            return


def fields(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The sums of the steps' figures (nothing when llama.cpp reported none)."""
    if not steps:
        return {}
    sums = {key: sum(float(step.get(key) or 0) for step in steps) for key in _KEYS}
    return {key: round(value) if key.endswith("_ms") else int(value) for key, value in sums.items()}

"""Server-sent events framing and the fast look at an event's kind. Pure."""

from __future__ import annotations

import re

__all__ = ["KEEP_ALIVE", "event_kind", "frame", "parse_last_event_id"]

KEEP_ALIVE = b": keep-alive\n\n"

# Events are pydantic dumps: ``"kind":"chunk"`` appears exactly once, without spaces.
_KIND = re.compile(rb'"kind":"([a-z_]+)"')


def event_kind(data: bytes) -> str:
    """The ``kind`` of a serialized run event without parsing the whole JSON."""
    match = _KIND.search(data)
    return match.group(1).decode() if match else "unknown"


def frame(seq: int, kind: str, data: bytes) -> bytes:
    """One SSE frame: ``id`` = JetStream stream sequence, ``event`` = event kind."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, kind.encode(), data)


def parse_last_event_id(value: str | None) -> int:
    """The stream sequence to resume after (0: from the start); junk counts as 0."""
    if not value:
        return 0
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 19 else 0

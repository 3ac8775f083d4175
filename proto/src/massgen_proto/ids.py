"""Identifier value types shared by every service: run ids, labels, answer versions."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

__all__ = [
    "answer_version",
    "label_for",
    "label_index",
    "new_run_id",
    "stream_tag",
    "turn_id_for",
    "turn_token",
]

_LABEL = re.compile(r"^agent([1-9][0-9]*)$")


def new_run_id() -> str:
    """Return a fresh run id: short, URL- and subject-safe."""
    return uuid.uuid4().hex[:16]


def label_for(index: int) -> str:
    """Return the anonymous label of the agent at 0-based config position ``index``."""
    return f"agent{index + 1}"


def label_index(label: str) -> int | None:
    """Return the 0-based position a label stands for, or None if it is not a label."""
    match = _LABEL.match(label)
    return int(match.group(1)) - 1 if match else None


def answer_version(label: str, number: int) -> str:
    """Return the public name of an agent's ``number``-th answer, e.g. ``agent2.3``."""
    return f"{label}.{number}"


def turn_id_for(run_id: str, label: str, number: int) -> str:
    """Return the id of an agent's ``number``-th turn in a run (subject-safe, unique per run)."""
    return f"{run_id}-{label}-t{number}"


def turn_token(secret: str, turn_id: str) -> str:
    """The capability of turn ``turn_id`` in a run whose secret is ``secret``.

    HMAC-SHA256 of the turn id under the run's secret (``RunState.secret``), first 32 hex
    digits. The orchestrator puts it in the turn request; reports and gateway requests
    of that turn must carry it. Whoever can read the run state (orchestrator, gateway)
    can check it; workers, which cannot, learn only the tokens of turns handed to them.
    """
    return hmac.new(secret.encode(), turn_id.encode(), hashlib.sha256).hexdigest()[:32]


def stream_tag(token: str) -> str:
    """The proof, on a turn's streamed events (chunks, token usage), that their publisher
    was handed the turn: HMAC-SHA256 of a fixed label under the turn's token, first 24
    hex digits ("" for a run without tokens).

    The orchestrator announces it in the turn's ``turn_started`` event and the worker
    puts it on every event it streams; readers drop streamed events whose tag does not
    match (``trust.StreamGate``). It is one-way: readers, who all see it, cannot derive
    the token from it, so it lets nobody submit reports or call tools.
    """
    if not token:
        return ""
    return hmac.new(token.encode(), b"stream", hashlib.sha256).hexdigest()[:24]

"""Identifier value types shared by every service: run ids, labels, answer versions."""

from __future__ import annotations

import re
import uuid

__all__ = ["answer_version", "label_for", "label_index", "new_run_id", "turn_id_for"]

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

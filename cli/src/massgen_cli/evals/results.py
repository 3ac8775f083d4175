"""The results folder of an eval.

eval.json       what was measured: benchmark, data file hash, team config, seed
results.jsonl   one scored problem per line (a later line for the same id replaces
                an earlier one); what makes an interrupted eval resumable
summary.json    the figures (written at the end, and by ``massgen eval show``)
chart.png       pass@1 of the team, its members, the baselines and the oracle
runs/<n>-<id>/  each problem's run log (events.jsonl, agent outputs, final answer)
services.log, worker.log   the stack's logs (local runs)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "CHART",
    "META",
    "RESULTS",
    "SUMMARY",
    "ResultsFile",
    "differences",
    "read_meta",
    "write_meta",
]

META = "eval.json"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"
CHART = "chart.png"
MEASURED = ("benchmark", "data_sha256", "config", "seed", "api", "team")
"""Meta keys that must match for a folder to be resumed."""


def read_meta(folder: Path) -> dict[str, Any] | None:
    path = folder / META
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Measured keys whose values differ between two metas."""
    return [key for key in MEASURED if old.get(key) != new.get(key)]


class ResultsFile:
    """``results.jsonl``: append-only, one JSON record per line, fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, Any]]:
        """Records by problem id (the last line for an id wins; a torn last line is cut)."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            # Killed mid-write: drop the partial line so the next record starts clean.
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as handle:
                handle.truncate(cut)
            data = data[:cut]
        records: dict[str, dict[str, Any]] = {}
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                records[str(record["id"])] = record
        return records

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

"""Generate JSON Schemas of the message families for non-Python clients."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from .config import RunConfig
from .events import RunEventAdapter
from .media import FilesReplyAdapter, FilesRequestAdapter
from .messages import (
    CancelRun,
    CancelTurn,
    CreateRun,
    OrchestratorReplyAdapter,
    TurnRequest,
    WorkerReportAdapter,
)
from .tools import GatewayReplyAdapter, GatewayRequestAdapter

__all__ = ["SCHEMA_DIR", "render_schemas", "write_schemas"]

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

_FAMILIES: dict[str, TypeAdapter] = {
    "run_event": RunEventAdapter,
    "worker_report": WorkerReportAdapter,
    "orchestrator_reply": OrchestratorReplyAdapter,
    "turn_request": TypeAdapter(TurnRequest),
    "create_run": TypeAdapter(CreateRun),
    "cancel_run": TypeAdapter(CancelRun),
    "cancel_turn": TypeAdapter(CancelTurn),
    "run_config": TypeAdapter(RunConfig),
    "gateway_request": GatewayRequestAdapter,
    "gateway_reply": GatewayReplyAdapter,
    "gateway_files_request": FilesRequestAdapter,
    "gateway_files_reply": FilesReplyAdapter,
}


def render_schemas() -> dict[str, str]:
    """Return file name -> JSON text for every schema."""
    return {
        f"{name}.schema.json": json.dumps(adapter.json_schema(), indent=2, sort_keys=True) + "\n"
        for name, adapter in _FAMILIES.items()
    }


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into ``directory`` and return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas():
        print(path)

"""A run's media artifacts (generated images, audio) after it ends: fetched, copied into
the log folder (``files/<label>/<path>``), and named with their sizes.

The files live with the mcp-gateway (in the agents' snapshots and the winner's final
workspace). A local stack is asked over NATS (``GATEWAY_RUN_FILES``, the API's own
request), a deployment over HTTP (``GET /v1/runs/{id}/files``); either way the same
list comes back, ``<label>/<path>`` each, the way the answers name them.
"""

from __future__ import annotations

import base64
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from massgen_proto.media import (
    FileChunk,
    FilesReplyAdapter,
    RunFileRequest,
    RunFiles,
    RunFilesRequest,
)
from massgen_proto.subjects import GATEWAY_RUN_FILES

__all__ = ["Artifact", "collect", "describe", "save"]

FOLDER = "files"
"""The log folder's subfolder holding a run's artifacts."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """One media file of a run."""

    path: str
    """``<label>/<path>``."""
    mime: str
    size: int
    data: bytes


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1048576:.1f} MB"


async def _over_nats(nc: Any, run_id: str, timeout: float) -> list[Artifact]:
    from massgen_kit.keepalive import request_with_keepalive

    async def ask(request: RunFileRequest | RunFilesRequest) -> Any:
        data = await request_with_keepalive(
            nc, GATEWAY_RUN_FILES, request.model_dump_json().encode(), timeout
        )
        return FilesReplyAdapter.validate_json(data)

    listing = await ask(RunFilesRequest(run_id=run_id))
    if not isinstance(listing, RunFiles):
        return []
    found = []
    for entry in listing.files:
        data = b""
        version = None
        while True:
            chunk = await ask(
                RunFileRequest(run_id=run_id, path=entry.path, offset=len(data), version=version)
            )
            if not isinstance(chunk, FileChunk):
                break
            piece = base64.b64decode(chunk.data)
            data += piece
            version = chunk.version
            if len(data) >= chunk.size or not piece:
                found.append(Artifact(entry.path, chunk.mime, chunk.size, data))
                break
    return found


async def _over_http(api: Any, run_id: str) -> list[Artifact]:
    found = []
    for entry in await api.run_files(run_id):
        data = await api.file(entry["url"])
        found.append(Artifact(entry["path"], entry["mime"], entry["size"], data))
    return found


async def collect(target: Any, run_id: str, timeout: float = 30.0) -> list[Artifact]:
    """The run's artifacts from ``target`` (a local stack or ``--api``); none when the
    target cannot say (no gateway, an older server): a run's result never fails here."""
    try:
        if getattr(target, "kind", None) == "api":
            return await _over_http(target.api, run_id)
        nc = getattr(target, "nc", None)
        return await _over_nats(nc, run_id, timeout) if nc is not None else []
    except Exception:  # noqa: BLE001 - artifacts are an extra; the run's outcome stands
        return []


def save(folder: Path, artifacts: list[Artifact]) -> list[Path]:
    """Copy the artifacts into ``<folder>/files/<label>/<path>``; returns the paths."""
    written = []
    for artifact in artifacts:
        relative = posixpath.normpath(artifact.path)
        if relative.startswith(("/", "..")):
            continue  # the gateway never names such a path; never write outside the folder
        target = folder / FOLDER / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(artifact.data)
        written.append(target)
    return written


def describe(artifacts: list[Artifact], folder: Path | None) -> list[str]:
    """One line per artifact: its path, size and type, and its copy in the log folder."""
    lines = []
    for artifact in artifacts:
        where = f" -> {folder / FOLDER / artifact.path}" if folder is not None else ""
        lines.append(f"artifact: {artifact.path} ({_size(artifact.size)}, {artifact.mime}){where}")
    return lines

"""The gateway's file requests (``massgen_proto.media``): bytes in, a reply model out.

``service.py`` receives them on ``GATEWAY_FILES`` (workers) and ``GATEWAY_RUN_FILES``
(the API) and sends back what these return; the run state, capability check and a run's
tools come in as the service's own functions, so this module touches no NATS.

- ``agent_file``: a worker's chunk read or write of its agent's file, allowed only with
  the capability of the agent's current turn (as a tool call is), then served by
  ``media_tools.serve_agent_file`` under the agent's path permissions;
- ``run_file``: the API's listing of a run's media files or a chunk of one
  (``run_files``), for a run that exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from massgen_proto.media import (
    FileChunk,
    FileReadRequest,
    FilesRequestAdapter,
    FileWriteRequest,
    FileWritten,
    RunFileRequest,
    RunFiles,
    RunFilesRequest,
)
from massgen_proto.messages import ErrorReply
from massgen_proto.record import RunRecord
from pydantic import ValidationError

from . import capability, run_files
from .broker import RunTools, ToolsConfigError
from .media_tools import serve_agent_file
from .settings import GatewaySettings

__all__ = ["agent_file", "run_file"]

Refusal = Callable[[FileReadRequest | FileWriteRequest], Awaitable[str | None]]
"""Why a request may not act on its run (None: it may): the service's capability check."""
RunOf = Callable[[str], Awaitable[RunTools | None]]
"""A run's tools (None: no such run)."""
ReadRun = Callable[[str], Awaitable[tuple[RunRecord, int] | None]]
"""A run's latest state and revision (None: no such run)."""


async def agent_file(
    data: bytes, refusal: Refusal, run_of: RunOf
) -> FileChunk | FileWritten | ErrorReply:
    """Serve a worker's ``FileReadRequest`` / ``FileWriteRequest``."""
    try:
        request = FilesRequestAdapter.validate_json(data)
    except ValidationError as error:
        return ErrorReply(error=f"bad files request: {error}")
    if not isinstance(request, FileReadRequest | FileWriteRequest):
        return ErrorReply(error="run files are read on their own subject", code="forbidden")
    reason = await refusal(request)
    if reason is not None:
        why = capability.REASONS.get(reason, reason)
        return ErrorReply(error=f"file request refused: {why} ({reason})", code="forbidden")
    try:
        run = await run_of(request.run_id)
    except ToolsConfigError as error:
        return ErrorReply(error=str(error))
    if run is None:
        return ErrorReply(error=f"no run {request.run_id!r}", code="not_found")
    try:
        agent = run.agent(request.agent_id, request.label)
    except KeyError as error:
        return ErrorReply(error=str(error.args[0]), code="not_found")
    await agent.prepare()
    return await asyncio.to_thread(serve_agent_file, agent, request)


async def run_file(
    data: bytes, read_run: ReadRun, settings: GatewaySettings
) -> FileChunk | RunFiles | ErrorReply:
    """Serve the API's ``RunFilesRequest`` / ``RunFileRequest``."""
    try:
        request = FilesRequestAdapter.validate_json(data)
    except ValidationError as error:
        return ErrorReply(error=f"bad run files request: {error}")
    if not isinstance(request, RunFileRequest | RunFilesRequest):
        return ErrorReply(error="not a run files request")
    latest = await read_run(request.run_id)
    if latest is None:
        return ErrorReply(error=f"no run {request.run_id!r}", code="not_found")
    root = Path(settings.workspace_root)
    if isinstance(request, RunFilesRequest):
        return await asyncio.to_thread(run_files.list_files, root, latest[0])
    limit = settings.media_max_bytes
    return await asyncio.to_thread(run_files.read_chunk, root, latest[0], request, limit)

"""A run's media files: the images (and audio) its agents generated or left in their
workspaces, as ``<label>/<path>`` (the way answers name them).

- ``GET /v1/runs/{id}/files``: the list, with sizes and media types;
- ``GET /v1/runs/{id}/files/{label}/{path}``: one file's bytes.

The run must be the caller's (403 otherwise, as every run route). The path is checked
here (no ``..``, no empty or dot component, no absolute path, no backslash or NUL) and
again by the mcp-gateway, which holds the files and serves only media files from the
agent's snapshot or the winner's final workspace, never through a symlink.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from massgen_proto.media import FileChunk, FilesReply, RunFileRequest, RunFiles, RunFilesRequest
from massgen_proto.messages import ErrorReply
from pydantic import BaseModel, Field

from ..errors import ApiError
from ..service import GatewayUnavailable
from .context import ApiContext, Ctx, RunId, Tenant
from .runs import _record_for

__all__ = ["RunFileItem", "RunFileList", "router"]

router = APIRouter()

FilePath = Annotated[
    str, PathParam(max_length=1000, description="`<label>/<path>`, e.g. `agent1/art/fox.png`")
]
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_STATUS = {"not_found": 404, "forbidden": 403, "bad_request": 400, "internal": 502}


class RunFileItem(BaseModel):
    """One media file of a run."""

    path: str
    """``<label>/<path in the agent's workspace>``."""
    mime: str
    size: int = Field(ge=0)
    url: str
    """Where to fetch it (with the same bearer token)."""


class RunFileList(BaseModel):
    run_id: str
    files: list[RunFileItem]


def _checked(path: str) -> str:
    """The path if it names a file under a label, else a 400 naming the problem."""
    parts = path.split("/")
    if "\x00" in path or "\\" in path:
        raise ApiError(400, f"{path!r}: NUL and backslash are not allowed in file paths")
    if len(parts) < 2 or any(part in ("", ".", "..") for part in parts):
        raise ApiError(
            400, f"{path!r} is not <label>/<path> (no '..', '.', empty or absolute parts)",
            code="bad_file_path",
        )  # fmt: skip
    return path


async def _ask(ctx: ApiContext, request: RunFileRequest | RunFilesRequest) -> FilesReply:
    try:
        reply = await ctx.backend.run_files(request)
    except GatewayUnavailable as error:
        raise ApiError(503, str(error), code="gateway_unavailable") from None
    if isinstance(reply, ErrorReply):
        raise ApiError(_STATUS.get(reply.code, 400), reply.error, code=f"file_{reply.code}")
    return reply


@router.get("/runs/{run_id}/files", response_model=RunFileList, tags=["runs"])
async def list_files(ctx: Ctx, tenant: Tenant, run_id: RunId) -> RunFileList:
    """The run's media files (generated images, audio) under each agent's label."""
    await _record_for(ctx, tenant, run_id)
    reply = await _ask(ctx, RunFilesRequest(run_id=run_id))
    if not isinstance(reply, RunFiles):
        raise ApiError(502, f"unexpected gateway reply {reply.kind}")
    files = [
        RunFileItem(path=f.path, mime=f.mime, size=f.size, url=f"/v1/runs/{run_id}/files/{f.path}")
        for f in reply.files
    ]
    return RunFileList(run_id=run_id, files=files)


@router.get(
    "/runs/{run_id}/files/{path:path}",
    tags=["runs"],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's bytes",
            "content": {"image/png": {}, "audio/mpeg": {}, "video/mp4": {}},
        },
        400: {"description": "Not a `<label>/<path>` file path"},
    },
)
async def get_file(ctx: Ctx, tenant: Tenant, run_id: RunId, path: FilePath) -> StreamingResponse:
    """One media file of the run, streamed as the gateway sends its chunks."""
    await _record_for(ctx, tenant, run_id)
    path = _checked(path)
    first = await _ask(ctx, RunFileRequest(run_id=run_id, path=path))
    if not isinstance(first, FileChunk):
        raise ApiError(502, f"unexpected gateway reply {first.kind}")

    async def body() -> AsyncIterator[bytes]:
        chunk = first
        while True:
            data = base64.b64decode(chunk.data)
            yield data
            offset = chunk.offset + len(data)
            if offset >= chunk.size or not data:
                return
            ask = RunFileRequest(run_id=run_id, path=path, offset=offset, version=chunk.version)
            try:
                following = await _ask(ctx, ask)
            except ApiError:
                return  # changed or gone meanwhile: the client sees a short body
            if not isinstance(following, FileChunk):
                return
            chunk = following

    name = _SAFE_NAME.sub("_", path.rsplit("/", 1)[-1])
    headers = {
        "Content-Length": str(first.size),
        "Content-Disposition": f'inline; filename="{name}"',
        "Cache-Control": "private, max-age=60",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(body(), media_type=first.mime, headers=headers)

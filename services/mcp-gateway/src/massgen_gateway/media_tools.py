"""An agent's media at the gateway: its uploads, ``read_multimodal_files``, file chunks.

- ``agent_media``: what the tool listing tells the worker (``media.AgentMedia``): each
  ``upload_files`` image or sound (a URL as written; a local file, relative to the
  gateway's current folder like a context path, checked now: exists, is an image (or
  for ``audio_path`` a WAV or MP3) by its content, fits the limit),
  and whether to offer the worker's generation tools.
- ``read_multimodal_files``: a built-in tool (offered with the workspace tools when the
  agent's model takes images) that shows the model images of its workspace, the
  reference snapshots or context paths: every path is checked like any other tool's
  (``permissions``); the result names the files and carries ``MediaRef``s, which the
  worker reads (``serve_agent_file``) and adds to the conversation as image parts.
- ``serve_agent_file``: a worker's chunk read (an allowed path, or an upload by index)
  or chunk write (a generated file, at a path the agent may write).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from massgen_proto.media import (
    AgentMedia,
    FileChunk,
    FileReadRequest,
    FileWriteRequest,
    FileWritten,
    MediaRef,
    Upload,
)
from massgen_proto.media_models import accepts
from massgen_proto.messages import ErrorReply, Phase
from massgen_proto.tools import ToolResult
from massgen_proto.video_inputs import video_input

from .builtin import BuiltinTool
from .fdwalk import SymlinkRace, ToolError
from .media_files import (
    AUDIO_TYPES,
    IMAGE_TYPES,
    MEDIA_TYPES,
    PDF_TYPES,
    VIDEO_TYPES,
    MediaError,
    chunk_of,
    describe,
    open_checked,
    open_upload,
)
from .media_files import write_chunk as _write_chunk
from .outcome import CallOutcome, denied_result, tool_error
from .permissions import Decision
from .url_uploads import fetch_upload, fetched_path

if TYPE_CHECKING:
    from .broker import AgentTools

__all__ = [
    "MAX_IMAGES",
    "READ_MULTIMODAL",
    "agent_media",
    "call_read_multimodal",
    "max_bytes",
    "offers_read_multimodal",
    "serve_agent_file",
]

MAX_IMAGES = 4
"""Images one ``read_multimodal_files`` call may show."""

READ_MULTIMODAL = BuiltinTool(
    "read_multimodal_files",
    "Look at image files (PNG, JPEG, GIF, WebP), videos (MP4, MOV, WebM: the video or its "
    "frames), or PDF documents if your model reads them: they are shown to you after this "
    "call's result. Up to "
    f"{MAX_IMAGES} paths, relative to your workspace or absolute.",
    {
        "paths": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "maxItems": MAX_IMAGES,
            "description": "Image (or video, or PDF) paths.",
        }
    },
    ("paths",),
    (),  # checked one by one in call_read_multimodal
)


def max_bytes(agent: AgentTools) -> int:
    """The agent's file size limit: its config's, capped by the gateway's setting."""
    configured = int(agent.agent.backend.media_max_file_size_mb * 1024 * 1024)
    return min(configured, agent.run.settings.media_max_bytes)


def offers_read_multimodal(agent: AgentTools) -> bool:
    """The tool is offered with the built-in tools when the agent's model takes images
    or PDF documents."""
    return bool(shown_types(agent))


def shown_types(agent: AgentTools) -> frozenset[str]:
    """What ``read_multimodal_files`` may show the agent's model (by what it takes)."""
    b = agent.agent.backend
    images = IMAGE_TYPES if accepts(b.type, b.model or "", "image") else frozenset()
    videos = VIDEO_TYPES if video_input(b.type, b.model or "") else frozenset()
    return images | videos | (PDF_TYPES if accepts(b.type, b.model or "", "pdf") else frozenset())


def _upload_path(source: str) -> str:
    """A local upload path as the gateway opens it (``~`` expanded, relative to the
    gateway's current folder)."""
    return os.path.abspath(os.path.expanduser(source))


def agent_media(agent: AgentTools) -> AgentMedia | None:
    """What the worker needs to know about the agent's media (None: nothing)."""
    b = agent.agent.backend
    if not (
        b.upload_files or b.enable_image_generation or b.enable_audio_generation
        or b.enable_audio_understanding or b.enable_video_generation
    ):  # fmt: skip
        return None
    limit = max_bytes(agent)
    uploads: list[Upload] = []
    problems: list[str] = []
    for index, entry in enumerate(b.upload_files):
        key = f"agents[{agent.index}].backend.upload_files[{index}].{entry.key}"
        if entry.is_url:
            # Images go to the provider by URL; sounds and documents are fetched here.
            url = entry.source if entry.kind == "image" else None
            uploads.append(Upload(index=index, name=entry.source, url=url, kind=entry.kind))
            continue
        path = _upload_path(entry.source)
        try:
            st, mime = _describe_upload(path, limit, _upload_types(entry.kind))
        except MediaError as error:
            problems.append(f"{key}: {error}")
            continue
        name = os.path.basename(path)
        uploads.append(Upload(index=index, name=name, mime=mime, size=st.st_size, kind=entry.kind))
    return AgentMedia(
        uploads=uploads, image_generation=b.enable_image_generation,
        audio_generation=b.enable_audio_generation,
        audio_understanding=b.enable_audio_understanding,
        video_generation=b.enable_video_generation, max_bytes=limit, problems=problems,
    )  # fmt: skip


def _upload_types(kind: str) -> frozenset[str]:
    """What an upload of ``kind`` may be, by its content (config checks the kind)."""
    return {"audio": AUDIO_TYPES, "file": PDF_TYPES, "video": VIDEO_TYPES}.get(kind, IMAGE_TYPES)


def _describe_upload(path: str, limit: int, kinds: frozenset[str]) -> tuple[os.stat_result, str]:
    fd = open_upload(path)
    try:
        return describe(fd, path, limit, kinds)
    finally:
        os.close(fd)


async def call_read_multimodal(
    agent: AgentTools, phase: Phase, name: str, arguments: dict[str, Any]
) -> CallOutcome:
    """Check each path, then describe the images the worker will show the model."""
    paths = arguments.get("paths")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or len(paths) > MAX_IMAGES:
        return tool_error(name, f"{name} needs 'paths': a list of 1 to {MAX_IMAGES} image paths")
    scope = agent.scope(phase)
    limit = max_bytes(agent)
    kinds = shown_types(agent)
    refs: list[MediaRef] = []
    for raw in paths:
        decision = scope.check(raw, "read", agent.ledger)
        if not decision.allowed:
            return CallOutcome(denied_result(name, decision.message), decision)
        try:
            st, mime = await asyncio.to_thread(_describe_checked, decision, limit, kinds)
        except (ToolError, MediaError) as error:
            return tool_error(name, f"Error: {error}")
        except SymlinkRace as race:
            d = race.decision
            denial = scope.deny(d.raw, d.path, "symlink_race", d.access, d.root)
            return CallOutcome(denied_result(name, denial.message), denial)
        agent.ledger.record_read(decision.path)
        refs.append(MediaRef(path=str(raw), mime=mime, size=st.st_size))
    listing = "; ".join(f"{r.path} ({r.mime}, {r.size / 1024:.1f} KB)" for r in refs)
    what = "image(s)" if all(r.mime in IMAGE_TYPES for r in refs) else "file(s)"
    text = f"Showing {len(refs)} {what}, in this order, right after this result: {listing}."
    return CallOutcome(ToolResult(name=name, content=text, media=refs))


def _describe_checked(
    decision: Decision, limit: int, kinds: frozenset[str]
) -> tuple[os.stat_result, str]:
    fd = open_checked(decision)
    try:
        return describe(fd, decision.raw, limit, kinds)
    finally:
        os.close(fd)


def _read(agent: AgentTools, request: FileReadRequest) -> FileChunk | ErrorReply:
    limit = max_bytes(agent)
    if request.upload is not None:
        uploads = agent.agent.backend.upload_files
        index = request.upload
        if index >= len(uploads) or (uploads[index].is_url and uploads[index].kind == "image"):
            return ErrorReply(error=f"no upload {index} the gateway serves for this agent")
        entry = uploads[index]
        kinds = _upload_types(entry.kind)
        if entry.is_url:
            fetched = _fetch(agent, index, entry.source, limit, kinds)
            fd = open_upload(str(fetched))
            return chunk_of(fd, entry.source, request.offset, request.version, limit, kinds)
        path = _upload_path(entry.source)
        fd = open_upload(path)
        return chunk_of(fd, path, request.offset, request.version, limit, kinds)
    scope = agent.scope(request.phase)
    decision = scope.check(request.path, "read", agent.ledger)
    if not decision.allowed:
        return ErrorReply(error=decision.message, code="forbidden")
    fd = open_checked(decision)
    # Pictures (shown, edited), sounds (transcribed), PDFs (shown): the tool checks which.
    kinds = MEDIA_TYPES | PDF_TYPES
    return chunk_of(fd, decision.raw, request.offset, request.version, limit, kinds)


def _fetch(agent: AgentTools, index: int, url: str, limit: int, kinds: frozenset[str]) -> Path:
    """The run's copy of an upload URL (fetched on the first read, ``url_uploads``)."""
    settings = agent.run.settings
    target = fetched_path(agent.run.layout.run_dir, agent.label, index)
    try:
        return fetch_upload(
            url, target, limit, kinds, allow_private=settings.upload_url_private,
            timeout=settings.upload_url_timeout,
        )  # fmt: skip
    except MediaError as error:
        entry = agent.agent.backend.upload_files[index]
        key = f"agents[{agent.index}].backend.upload_files[{index}].{entry.key}"
        raise MediaError(f"{key} (agent {agent.agent.id!r}): {error}") from None


def _write(agent: AgentTools, request: FileWriteRequest) -> FileWritten | ErrorReply:
    b = agent.agent.backend
    if not (b.enable_image_generation or b.enable_audio_generation or b.enable_video_generation):
        return ErrorReply(error="this agent generates no media files", code="forbidden")
    decision = agent.scope(request.phase).check(request.path, "write", agent.ledger)
    if not decision.allowed:
        return ErrorReply(error=decision.message, code="forbidden")
    return _write_chunk(
        decision, request.offset, request.data, request.total, max_bytes(agent), agent.ledger
    )


def serve_agent_file(
    agent: AgentTools, request: FileReadRequest | FileWriteRequest
) -> FileChunk | FileWritten | ErrorReply:
    """A worker's chunk read or write for ``agent`` (blocking file I/O: run in a thread).

    Every failure is an ``ErrorReply`` naming the file."""
    try:
        if isinstance(request, FileReadRequest):
            if (request.path is None) == (request.upload is None):
                return ErrorReply(error="name either 'path' or 'upload'")
            return _read(agent, request)
        return _write(agent, request)
    except (MediaError, ToolError) as error:
        return ErrorReply(error=str(error))
    except SymlinkRace as race:
        raw = race.decision.raw
        return ErrorReply(error=f"{raw}: a symlink appeared on the path", code="forbidden")

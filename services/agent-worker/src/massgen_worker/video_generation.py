"""``generate_video``: a clip from the provider's videos API, saved into the workspace.

A video job is asynchronous at the provider (OpenAI's ``/v1/videos``, Sora): litellm's
``avideo_generation`` creates it, ``avideo_status`` reports its progress and
``avideo_content`` downloads the MP4 once it is completed. The worker polls every
``POLL_SECONDS`` for at most ``MAX_WAIT_SECONDS`` (inside the turn's own time limit); a
failed job, or one still running then, is a tool error the model reads. The file goes
into the agent's workspace through the gateway (``media.write_file``), like
``generate_image``'s pictures, so it is snapshotted, copied to the log folder and served
by the API's files route.
"""

from __future__ import annotations

import asyncio
from typing import Any

from massgen_proto.config.multimodal import VIDEO_MODELS
from massgen_proto.function_tools import function_tool
from massgen_proto.messages import BackendSpec, TurnRequest
from massgen_proto.providers import BACKENDS

from .generation import GeneratedFile, _target, endpoint
from .litellm_loader import litellm_ready
from .media import FileChannel, MediaError, write_file
from .model_errors import classify_error
from .wire import Tool

__all__ = ["MAX_WAIT_SECONDS", "POLL_SECONDS", "VIDEO_TOOL", "generate_video", "video_tools"]

VIDEO_TOOL = "generate_video"
POLL_SECONDS = 5.0
"""Seconds between two status requests of a running job."""
MAX_WAIT_SECONDS = 480.0
"""How long a job may run before the tool gives up (below the default turn limit)."""

_SECONDS = ["4", "8", "12"]
_SIZES = ["720x1280", "1280x720", "1024x1792", "1792x1024"]
_DONE = frozenset({"completed", "failed"})


def video_tools(on: bool) -> list[Tool]:
    """The tool offered for ``enable_video_generation``."""
    if not on:
        return []
    return [function_tool(
        VIDEO_TOOL,
        "Generate a short video clip from a text description and save it (MP4) in your "
        "workspace. It takes a few minutes.",
        {"prompt": {"type": "string", "description": "What the video shows, in detail."},
         "seconds": {"type": "string", "enum": _SECONDS, "description": "Length."},
         "size": {"type": "string", "enum": _SIZES, "description": "Width x height."},
         "path": {"type": "string",
                  "description": "Where to save it (relative path); default: generated/."}},
        ["prompt"], closed=True,
    )]  # fmt: skip


def _model(backend: BackendSpec) -> str:
    if backend.type not in VIDEO_MODELS:
        raise MediaError(f"backend type {backend.type!r} has no videos API here")
    return BACKENDS[backend.type].litellm_prefix + VIDEO_MODELS[backend.type]


def _failure(job: Any) -> str:
    error = getattr(job, "error", None) or {}
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or error or "no reason given")


async def _finished(litellm: Any, job: Any, backend: BackendSpec, poll: float, wait: float) -> Any:
    """The job once it is done (completed or failed), polling its status.

    Raises:
        MediaError: a status request failed, or the job is still running after ``wait``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while job.status not in _DONE:
        left = deadline - loop.time()
        if left <= 0:
            raise MediaError(
                f"video generation timed out: the job was still {job.status} after "
                f"{wait:.0f} seconds; try a shorter clip or try again later"
            )
        await asyncio.sleep(min(poll, left))
        try:
            job = await litellm.avideo_status(video_id=job.id, **endpoint(backend))
        except Exception as error:  # CancelledError is not an Exception: it propagates.
            raise MediaError(f"video status request failed: {classify_error(error)}") from error
    return job


async def generate_video(
    arguments: dict[str, Any],
    turn: TurnRequest,
    channel: FileChannel,
    count: int,
    *,
    poll: float = POLL_SECONDS,
    wait: float = MAX_WAIT_SECONDS,
) -> GeneratedFile:
    """Run ``generate_video`` and save the clip in the agent's workspace.

    Raises:
        MediaError: a bad argument, the provider refused or failed the job, the job
            timed out, the download is not an MP4, or the save was refused.
    """
    prompt = str(arguments.get("prompt") or "").strip()
    if not prompt:
        raise MediaError("give a 'prompt' describing the video")
    seconds, size = arguments.get("seconds"), arguments.get("size")
    model, where = _model(turn.backend), endpoint(turn.backend)
    litellm = await litellm_ready()
    try:
        job = await litellm.avideo_generation(
            prompt=prompt, model=model, seconds=str(seconds) if str(seconds) in _SECONDS else None,
            size=size if size in _SIZES else None, **where,
        )  # fmt: skip
    except Exception as error:  # CancelledError is not an Exception: it propagates.
        raise MediaError(f"video generation failed: {classify_error(error)}") from error
    job = await _finished(litellm, job, turn.backend, poll, wait)
    if job.status == "failed":
        raise MediaError(f"video generation failed: {_failure(job)}")
    try:
        data = bytes(await litellm.avideo_content(video_id=job.id, **where))
    except Exception as error:  # CancelledError is not an Exception: it propagates.
        raise MediaError(f"video download failed: {classify_error(error)}") from error
    if data[4:8] != b"ftyp":
        raise MediaError("the provider's video is not an MP4 file; nothing was saved")
    path = _target(arguments.get("path"), f"video_{turn.number}_{count}", "video/mp4")
    written = await write_file(channel, turn, path, data)
    return GeneratedFile(path=path, size=written, mime="video/mp4")

"""Worker tools that take workspace files in: ``edit_image``, ``transcribe_audio``.

Like the generation tools (``generation``) they call the agent's provider through
litellm with the key and endpoint of its chat calls; the files they read come from the
gateway (``media.read_file``: the same path check as any tool's read, and the agent's
size limit). ``edit_image`` sends workspace pictures and a prompt to the images edit
API (``aimage_edit``) and saves the result like ``generate_image``; ``transcribe_audio``
sends a workspace sound to the transcription API (``atranscription``) and returns the
text to the model.
"""

from __future__ import annotations

import base64
import posixpath
from typing import Any

from massgen_proto.config.multimodal import IMAGE_MODELS, TRANSCRIPTION_MODELS
from massgen_proto.function_tools import function_tool
from massgen_proto.messages import BackendSpec, TurnRequest
from massgen_proto.providers import BACKENDS

from .generation import GeneratedFile, endpoint, save_image
from .litellm_loader import litellm_ready
from .media import FileChannel, MediaError, read_file
from .model_errors import classify_error
from .wire import Tool

__all__ = ["EDIT_TOOL", "MAX_EDIT_IMAGES", "TRANSCRIBE_TOOL", "edit_image", "input_tools"]

EDIT_TOOL = "edit_image"
TRANSCRIBE_TOOL = "transcribe_audio"
MAX_EDIT_IMAGES = 4
"""Pictures one edit may start from (the model is shown them all)."""


def input_tools(image: bool, audio: bool) -> list[Tool]:
    """The tools offered for image generation (editing comes with it) and for audio
    understanding."""
    tools = []
    if image:
        tools.append(function_tool(
            EDIT_TOOL,
            "Make a new image from images in your workspace and a description of the "
            "change, and save it (PNG) in your workspace.",
            {"paths": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                       "maxItems": MAX_EDIT_IMAGES,
                       "description": "Workspace (or context path) images to start from."},
             "prompt": {"type": "string", "description": "What the new image should show."},
             "path": {"type": "string",
                      "description": "Where to save it (relative path); default: generated/."}},
            ["paths", "prompt"], closed=True,
        ))  # fmt: skip
    if audio:
        tools.append(function_tool(
            TRANSCRIBE_TOOL,
            "Transcribe a sound file (WAV or MP3) in your workspace and return its text.",
            {"path": {"type": "string", "description": "The sound file's path."}},
            ["path"], closed=True,
        ))  # fmt: skip
    return tools


def _model(backend: BackendSpec, table: dict[str, str], what: str) -> str:
    if backend.type not in table:
        raise MediaError(f"backend type {backend.type!r} has no {what} API here")
    return BACKENDS[backend.type].litellm_prefix + table[backend.type]


async def edit_image(
    arguments: dict[str, Any], turn: TurnRequest, channel: FileChannel, count: int
) -> GeneratedFile:
    """Run ``edit_image`` and save the picture in the agent's workspace.

    Raises:
        MediaError: a bad argument, an unreadable image, or the provider call failed.
    """
    paths = arguments.get("paths")
    paths = [paths] if isinstance(paths, str) else paths
    prompt = str(arguments.get("prompt") or "").strip()
    if not isinstance(paths, list) or not 1 <= len(paths) <= MAX_EDIT_IMAGES:
        raise MediaError(f"give 'paths': a list of 1 to {MAX_EDIT_IMAGES} image paths")
    if not prompt:
        raise MediaError("give a 'prompt' describing the new image")
    images = []
    for raw in paths:
        data, mime = await read_file(channel, turn, path=str(raw))
        if not mime.startswith("image/"):
            raise MediaError(f"{raw}: not an image ({mime}); give PNG, JPEG or WebP files")
        # Bytes, not (name, bytes, type): litellm names and types each picture itself.
        images.append(data)
    model = _model(turn.backend, IMAGE_MODELS, "images edit")
    litellm = await litellm_ready()
    try:
        response = await litellm.aimage_edit(
            image=images, prompt=prompt, model=model, n=1, **endpoint(turn.backend)
        )
    except Exception as error:  # CancelledError is not an Exception: it propagates.
        raise MediaError(f"image editing failed: {classify_error(error)}") from error
    item = response.data[0] if response.data else None
    encoded = getattr(item, "b64_json", None)
    if not encoded:
        raise MediaError("image editing returned no image data")
    default = f"edited_{turn.number}_{count}"
    return await save_image(base64.b64decode(encoded), arguments, default, turn, channel)


async def transcribe_audio(
    arguments: dict[str, Any], turn: TurnRequest, channel: FileChannel
) -> str:
    """Run ``transcribe_audio``: the text of the workspace sound the model named.

    Raises:
        MediaError: a bad argument, an unreadable file, or the provider call failed.
    """
    raw = arguments.get("path")
    if not isinstance(raw, str) or not raw.strip():
        raise MediaError("give the 'path' of a WAV or MP3 file")
    data, mime = await read_file(channel, turn, path=raw)
    if not mime.startswith("audio/"):
        raise MediaError(f"{raw}: not a sound file ({mime}); give a WAV or MP3 file")
    model = _model(turn.backend, TRANSCRIPTION_MODELS, "transcription")
    litellm = await litellm_ready()
    try:
        response = await litellm.atranscription(
            model=model, file=(posixpath.basename(raw), data, mime), **endpoint(turn.backend)
        )
    except Exception as error:  # CancelledError is not an Exception: it propagates.
        raise MediaError(f"transcription failed: {classify_error(error)}") from error
    return str(getattr(response, "text", "") or "")

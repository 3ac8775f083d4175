"""Media generation tools the worker runs itself: ``generate_image``, ``generate_audio``.

They call the agent's provider through litellm (``aimage_generation``: the OpenAI
images API shape; ``aspeech``: the OpenAI speech API) with the same key and endpoint as
the agent's chat calls (``call_plan.build_call_params``: the config's key or the
provider's variable, the operator's endpoint policy), then store the file in the
agent's workspace through the gateway (``media.write_file``, which checks the path as
any tool's write). The result tells the model where the file is, and the
label-relative path (``agent1/images/cat.png``) by which answers, the other agents
and the API's ``/v1/runs/{id}/files/`` name it.
"""

from __future__ import annotations

import base64
import posixpath
from dataclasses import dataclass
from typing import Any

from massgen_proto.config.multimodal import IMAGE_MODELS, SPEECH_MODELS
from massgen_proto.function_tools import function_tool
from massgen_proto.messages import BackendSpec, TurnRequest
from massgen_proto.providers import BACKENDS

from .call_plan import build_call_params
from .litellm_loader import litellm_ready
from .media import FileChannel, MediaError, write_file
from .model_errors import classify_error
from .wire import Tool

__all__ = [
    "AUDIO_TOOL",
    "IMAGE_TOOL",
    "GeneratedFile",
    "endpoint",
    "generate",
    "generation_tools",
    "save_image",
]

IMAGE_TOOL = "generate_image"
AUDIO_TOOL = "generate_audio"

_SIZES = ["1024x1024", "1024x1536", "1536x1024", "auto"]
_VOICES = ["alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"]
_SUFFIX = {
    "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "audio/mpeg": ".mp3",
    "video/mp4": ".mp4",
}  # fmt: skip


_PATH = {
    "type": "string",
    "description": "Where to save it in your workspace (relative path); default: generated/.",
}


def generation_tools(image: bool, audio: bool) -> list[Tool]:
    """The tools offered for the agent's ``enable_*_generation`` switches."""
    tools = []
    if image:
        tools.append(function_tool(
            IMAGE_TOOL,
            "Generate an image from a text description and save it (PNG) in your workspace.",
            {"prompt": {"type": "string", "description": "What the image shows, in detail."},
             "path": _PATH, "size": {"type": "string", "enum": _SIZES}},
            ["prompt"], closed=True,
        ))  # fmt: skip
    if audio:
        tools.append(function_tool(
            AUDIO_TOOL,
            "Turn text into speech and save it (MP3) in your workspace.",
            {"text": {"type": "string", "description": "What is said."},
             "path": _PATH, "voice": {"type": "string", "enum": _VOICES}},
            ["text"], closed=True,
        ))  # fmt: skip
    return tools


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    """A file a generation tool saved."""

    path: str
    """Relative to the agent's workspace."""
    size: int
    mime: str


def _target(raw: object, default_name: str, mime: str) -> str:
    """The workspace-relative path to save at (the model's, with the right suffix).

    Raises:
        MediaError: not a relative path inside the workspace.
    """
    path = raw if isinstance(raw, str) and raw.strip() else f"generated/{default_name}"
    path = posixpath.normpath(path.strip())
    if path.startswith(("/", "~", "..")) or "\\" in path:
        raise MediaError(f"{raw!r}: give a relative path inside your workspace")
    suffix = _SUFFIX.get(mime, "")
    if suffix and posixpath.splitext(path)[1].lower() not in (suffix, ".jpeg"):
        path += suffix
    return path


def endpoint(backend: BackendSpec) -> dict[str, Any]:
    """The key and endpoint of the agent's chat calls, for a generation call."""
    params = build_call_params(backend, [], None, None)
    return {k: params[k] for k in ("api_key", "api_base", "api_version") if k in params}


async def _image_bytes(backend: BackendSpec, arguments: dict[str, Any]) -> bytes:
    litellm = await litellm_ready()
    size = arguments.get("size")
    model = BACKENDS[backend.type].litellm_prefix + IMAGE_MODELS[backend.type]
    try:
        response = await litellm.aimage_generation(
            prompt=str(arguments.get("prompt") or ""), model=model, n=1,
            size=size if size in _SIZES else None, **endpoint(backend),
        )  # fmt: skip
    except Exception as error:  # CancelledError is not an Exception: it propagates.
        raise MediaError(f"image generation failed: {classify_error(error)}") from error
    item = response.data[0] if response.data else None
    encoded = getattr(item, "b64_json", None)
    if not encoded:
        raise MediaError("image generation returned no image data")
    return base64.b64decode(encoded)


async def _speech_bytes(backend: BackendSpec, arguments: dict[str, Any]) -> bytes:
    litellm = await litellm_ready()
    voice = arguments.get("voice")
    model = BACKENDS[backend.type].litellm_prefix + SPEECH_MODELS[backend.type]
    try:
        response = await litellm.aspeech(
            model=model, input=str(arguments.get("text") or ""),
            voice=voice if voice in _VOICES else "alloy", **endpoint(backend),
        )  # fmt: skip
    except Exception as error:  # CancelledError is not an Exception: it propagates.
        raise MediaError(f"speech generation failed: {classify_error(error)}") from error
    return bytes(response.content)


async def generate(
    name: str, arguments: dict[str, Any], turn: TurnRequest, channel: FileChannel, count: int
) -> GeneratedFile:
    """Run generation tool ``name`` and save its file in the agent's workspace.

    Args:
        name: ``IMAGE_TOOL`` or ``AUDIO_TOOL``.
        arguments: the model's arguments.
        turn: the turn (its backend, and the caller of the gateway's file requests).
        channel: the gateway's file requests.
        count: a number for the default file name (the tool's n-th call in the turn).

    Raises:
        MediaError: the provider call or the save failed (the message says which).
    """
    if name == IMAGE_TOOL:
        if not str(arguments.get("prompt") or "").strip():
            raise MediaError("give a 'prompt' describing the image")
        data = await _image_bytes(turn.backend, arguments)
        return await save_image(data, arguments, f"image_{turn.number}_{count}", turn, channel)
    if not str(arguments.get("text") or "").strip():
        raise MediaError("give the 'text' to speak")
    data, mime = await _speech_bytes(turn.backend, arguments), "audio/mpeg"
    path = _target(arguments.get("path"), f"speech_{turn.number}_{count}", mime)
    size = await write_file(channel, turn, path, data)
    return GeneratedFile(path=path, size=size, mime=mime)


async def save_image(
    data: bytes, arguments: dict[str, Any], default: str, turn: TurnRequest, channel: FileChannel
) -> GeneratedFile:
    """Save a provider's picture at the model's ``path`` (or ``generated/<default>``),
    with the suffix of its format."""
    mime = "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    elif data[8:12] == b"WEBP":
        mime = "image/webp"
    path = _target(arguments.get("path"), default, mime)
    size = await write_file(channel, turn, path, data)
    return GeneratedFile(path=path, size=size, mime=mime)

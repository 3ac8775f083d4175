"""MassGen's multimodal backend keys: files in (``upload_files``), media out
(``enable_image_generation`` / ``enable_audio_generation``).

- ``upload_files``: a list of ``{image_path: ...}`` entries (MassGen's spelling; a local
  path or an ``http(s)`` URL). Each image becomes an image part of the agent's user
  message. A local path is read by the mcp-gateway, relative to its current folder
  like a context path, and may be at most ``media_max_file_size_mb`` megabytes.
  ``{audio_path: ...}`` (a WAV or MP3: a local path, or a URL the gateway fetches)
  becomes an ``input_audio`` part, for a model that takes audio. ``{file_path: ...}`` (a
  PDF) on a backend with file search (``FILE_SEARCH_TYPES``: a local path or a URL) goes
  into a vector store the agent's ``file_search`` tool reads; elsewhere a local PDF
  becomes a ``file`` part, for a model that reads PDFs. ``{video_path: ...}`` (a local
  MP4, MOV or WebM) becomes the video itself for a model that takes video, or evenly
  spaced frames as image parts for a vision model (``video_inputs``). Videos by URL, and
  documents by URL without file search, are refused with the reason (``upload_problem``).
- ``enable_image_generation``: the agent gets a ``generate_image`` tool whose pictures
  are saved into its workspace (the backend's provider must have an images API that
  litellm calls: ``IMAGE_MODELS``).
- ``enable_audio_generation``: the same for speech (``generate_audio``, ``SPEECH_MODELS``).
  Image generation also brings ``edit_image`` (pictures from workspace pictures, through
  the same provider's images edit API).
- ``enable_audio_understanding``: the agent gets a ``transcribe_audio`` tool returning
  the text of a workspace sound (``TRANSCRIPTION_MODELS``).
- ``enable_video_generation``: a ``generate_video`` tool whose MP4 clips are saved into
  the workspace (``VIDEO_MODELS``: the provider's videos API, e.g. OpenAI's Sora).

``media_problems`` checks an agent's backend before the run starts: a model that cannot
read images, a provider without the generation API, an upload kind not supported.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ..media_models import accepts
from ..video_inputs import video_input
from .base import ConfigModel

__all__ = [
    "DEFAULT_MEDIA_MAX_MB",
    "FILE_SEARCH_TYPES",
    "IMAGE_MODELS",
    "SPEECH_MODELS",
    "TRANSCRIPTION_MODELS",
    "VIDEO_MODELS",
    "UploadFile",
    "media_problems",
    "vision_problem",
]

DEFAULT_MEDIA_MAX_MB = 20.0
"""Largest upload or generated file, in megabytes, when the config sets none (the
largest image OpenAI takes in a chat request)."""

IMAGE_MODELS: dict[str, str] = {"openai": "gpt-image-1", "azure_openai": "gpt-image-1"}
"""Backend types whose provider has an images API litellm calls (``aimage_generation``),
and the model used."""
SPEECH_MODELS: dict[str, str] = {"openai": "gpt-4o-mini-tts", "azure_openai": "gpt-4o-mini-tts"}
"""Backend types whose provider has a speech API litellm calls (``aspeech``), and the
model used."""
FILE_SEARCH_TYPES = frozenset({"openai"})
"""Backend types whose ``file_path`` uploads go into a vector store of the provider's
(litellm's files and vector-store calls) searched by its ``file_search`` tool (Responses
API), instead of a PDF part in the message."""
TRANSCRIPTION_MODELS: dict[str, str] = {"openai": "whisper-1", "azure_openai": "whisper-1"}
"""Backend types whose provider has a transcription API litellm calls
(``atranscription``), and the model used."""

UploadKind = Literal["image", "audio", "video", "file"]
_KEYS: dict[str, UploadKind] = {
    "image_path": "image",
    "audio_path": "audio",
    "video_path": "video",
    "file_path": "file",
}

VIDEO_MODELS: dict[str, str] = {"openai": "sora-2", "azure_openai": "sora-2"}
"""Backend types whose provider has a videos API litellm calls (``avideo_generation``),
and the model used."""


class UploadFile(ConfigModel):
    """One ``upload_files`` entry: exactly one of MassGen's four keys."""

    image_path: str | None = None
    """An image (PNG, JPEG, GIF, WebP): a local path or an ``http(s)`` URL."""
    audio_path: str | None = None
    """A sound (WAV, MP3): a local path or an ``http(s)`` URL, for a model that takes
    audio."""
    video_path: str | None = None
    """A video (MP4, MOV, WebM): a local path (``video_inputs`` says how it is shown)."""
    file_path: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> UploadFile:
        given = [key for key in _KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(
                "an upload_files entry needs exactly one of image_path, audio_path, "
                f"video_path, file_path (found: {', '.join(given) or 'none'})"
            )
        if not str(getattr(self, given[0])).strip():
            raise ValueError(f"{given[0]} is empty")
        return self

    @property
    def key(self) -> str:
        """The entry's key (``image_path`` ...)."""
        return next(key for key in _KEYS if getattr(self, key) is not None)

    @property
    def kind(self) -> UploadKind:
        return _KEYS[self.key]

    @property
    def source(self) -> str:
        """The path or URL as written."""
        return str(getattr(self, self.key))

    @property
    def is_url(self) -> bool:
        return self.source.lower().startswith(("http://", "https://"))


def _audio_problem(entry: UploadFile, backend_type: str, model: str) -> str | None:
    # A URL is fetched by the gateway (limits and address rules there), then sent as
    # the same input_audio part as a local file.
    if not accepts(backend_type, model, "audio"):
        return (
            f"audio inputs are not supported by model {model!r} (backend type "
            f"{backend_type!r}): it does not take audio, by litellm's model table or, for "
            "models it does not list, this project's list of audio model families; use an "
            "audio model (gpt-4o-audio-preview, gemini, a Qwen omni model) for this agent"
        )
    return None


def _document_problem(entry: UploadFile, backend_type: str, model: str) -> str | None:
    if backend_type in FILE_SEARCH_TYPES:
        return None  # the provider's file search reads it, whatever the model
    if entry.is_url:
        able = ", ".join(sorted(FILE_SEARCH_TYPES))
        return (
            f"document inputs by URL need the provider's file search (vector stores), "
            f"which backend type {backend_type!r} has not here (supported: {able}); give "
            "the PDF's local path instead (for a model that reads PDFs), or put it in "
            "orchestrator.context_paths so the agent reads it with its file tools"
        )
    if not accepts(backend_type, model, "pdf"):
        return (
            f"document inputs are not supported by model {model!r} (backend type "
            f"{backend_type!r}): it does not read PDF files, by litellm's model table "
            "(supports_pdf_input) or, for models it does not list, this project's list of "
            "PDF model families; use gpt-4o, gpt-4.1, gpt-5, claude or gemini for this agent"
        )
    return None


def _video_problem(entry: UploadFile, backend_type: str, model: str) -> str | None:
    if entry.is_url:
        # Frames are decoded from the bytes and a video part carries them inline: nothing
        # here downloads a video for the model.
        return (
            "video inputs by URL are not supported: the video goes to the model inline "
            "(or as frames decoded here); download it and give its local path (MP4, MOV "
            "or WebM)"
        )
    if video_input(backend_type, model) is None:
        return (
            f"video inputs are not supported by model {model!r} (backend type "
            f"{backend_type!r}): it takes neither video nor images (to be shown frames), "
            "by litellm's model table or this project's lists of model families; use a "
            "vision model (gpt-4o, claude, gemini, a Qwen VL model) for this agent"
        )
    return None


def upload_problem(entry: UploadFile, backend_type: str, model: str) -> str | None:
    """Why the agent cannot be given ``entry`` (None: it can)."""
    if entry.kind == "audio":
        return _audio_problem(entry, backend_type, model)
    if entry.kind == "file":
        return _document_problem(entry, backend_type, model)
    if entry.kind == "video":
        return _video_problem(entry, backend_type, model)
    if not accepts(backend_type, model, "image"):
        return (
            f"model {model!r} (backend type {backend_type!r}) does not take images as input, "
            "by litellm's model table or, for models it does not list, this project's list "
            "of vision model families; use a vision model (gpt-4o, claude, gemini, a *-VL "
            "model) for this agent"
        )
    return None


def vision_problem(backend_type: str, model: str, function: str, tool: str) -> str | None:
    """Why MassGen's ``function``, mapped onto the agent's own vision (``tool``), cannot
    be had by the agent's model (None: it can, or the mapping needs no vision)."""
    if tool != "read_multimodal_files":
        return None
    if function == "understand_file":
        if accepts(backend_type, model, "pdf"):
            return None
        return (
            f"{function!r} is not supported for model {model!r} (backend type "
            f"{backend_type!r}): here it maps onto the agent's own reading of PDF files "
            "(read_multimodal_files), and this model does not read PDFs (litellm's "
            "supports_pdf_input); use gpt-4o, gpt-4.1, gpt-5, claude or gemini for this agent"
        )
    if accepts(backend_type, model, "image"):
        return None
    return (
        f"{function!r} is not supported for model {model!r} (backend type {backend_type!r}): "
        "here it maps onto the agent's own vision (read_multimodal_files), and this model "
        "does not take images; use a vision model for this agent"
    )


def generation_problem(key: str, backend_type: str) -> str | None:
    """Why ``enable_image_generation`` / ``enable_audio_generation`` /
    ``enable_audio_understanding`` cannot be on for
    ``backend_type`` (None: it can)."""
    table, what = {
        "enable_image_generation": (IMAGE_MODELS, "images"),
        "enable_audio_understanding": (TRANSCRIPTION_MODELS, "transcription"),
        "enable_video_generation": (VIDEO_MODELS, "videos"),
    }.get(key, (SPEECH_MODELS, "speech"))
    if backend_type in table:
        return None
    able = ", ".join(sorted(table))
    return (
        f"backend type {backend_type!r} has no {what} API that litellm calls here "
        f"(supported: {able}); give this agent one of those backends or remove {key!r}"
    )


def media_problems(
    backend_type: str,
    model: str,
    uploads: list[UploadFile],
    generation: dict[str, bool],
) -> list[tuple[str, str]]:
    """``(key path under backend, why)`` for every multimodal key the agent cannot have.

    Args:
        backend_type: the backend's ``type``.
        model: its ``model``.
        uploads: its ``upload_files``.
        generation: ``enable_image_generation`` / ``enable_audio_generation`` -> value.
    """
    found: list[tuple[str, str]] = []
    for index, entry in enumerate(uploads):
        problem = upload_problem(entry, backend_type, model)
        if problem:
            found.append((f"upload_files[{index}].{entry.key}", problem))
    for key, on in generation.items():
        problem = generation_problem(key, backend_type) if on else None
        if problem:
            found.append((key, problem))
    return found

"""Files that cross services: uploads, images a tool shows the model, generated artifacts.

The mcp-gateway holds every file (it owns workspaces and reads local upload paths, like
context paths). A worker reads and writes them on its turn's behalf, an API reads a
run's artifacts for ``GET /v1/runs/{id}/files/{path}``, always in chunks: a NATS message
is at most 1 MB by default, an image often more. Each chunk carries ``CHUNK_BYTES`` of
the file (base64 in JSON stays below the limit) and the file's ``version``; a reader
passes the version back for the next chunk, and the gateway refuses a chunk of a file
that changed in between, so a reader never stitches two versions together.

Two subjects, two kinds of caller (``subjects``):

- ``GATEWAY_FILES``: workers. Requests name the caller and carry its turn's capability,
  like tool calls; paths are checked against the agent's permissions (read, or write
  for generated files). ``FileReadRequest`` (a workspace path or an upload by index),
  ``FileWriteRequest``.
- ``GATEWAY_RUN_FILES``: the API, which has checked the run's tenant.
  ``RunFileRequest`` reads ``<label>/<path>`` of a finished or running run (the agent's
  latest snapshot; the winner's final workspace first), ``RunFilesRequest`` lists the
  media files there.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .messages import ErrorReply, Phase

__all__ = [
    "CHUNK_BYTES",
    "AgentMedia",
    "FileChunk",
    "FileReadRequest",
    "FileWriteRequest",
    "FileWritten",
    "FilesReply",
    "FilesReplyAdapter",
    "FilesRequest",
    "FilesRequestAdapter",
    "MediaRef",
    "RunFile",
    "RunFileRequest",
    "RunFiles",
    "RunFilesRequest",
    "Upload",
]

CHUNK_BYTES = 512 * 1024
"""File bytes per chunk: base64 makes 683 KiB of it, well inside NATS's 1 MiB."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Upload(_Message):
    """One of an agent's ``upload_files`` images (or sounds: ``audio/*``), as its worker
    puts it into the user message."""

    index: int = Field(ge=0)
    """Its position in ``backend.upload_files`` (what ``FileReadRequest.upload`` names)."""
    name: str
    """The file name or URL, for the text the model reads."""
    url: str | None = None
    """The config's ``http(s)`` URL of an image, passed on to the provider; None: a file
    the worker reads from the gateway (a local path, or a sound or document URL the
    gateway fetches: ``name`` is then the URL)."""
    kind: Literal["image", "audio", "video", "file"] | None = None
    """The config key's kind (``image_path`` -> image, ``file_path`` -> file ...)."""
    mime: str | None = None
    """``image/png``, ``audio/wav`` ... (local files: from their first bytes)."""
    size: int | None = None
    """Bytes (local files)."""


class AgentMedia(_Message):
    """An agent's media settings, sent with its tool list (``tools.ToolList.media``)."""

    uploads: list[Upload] = Field(default_factory=list)
    image_generation: bool = False
    """Offer ``generate_image`` (the worker runs it and writes the file here)."""
    audio_generation: bool = False
    """Offer ``generate_audio``."""
    audio_understanding: bool = False
    """Offer ``transcribe_audio`` (the worker reads the sound through the gateway)."""
    video_generation: bool = False
    """Offer ``generate_video`` (the worker polls the provider and writes the MP4 here)."""
    max_bytes: int = Field(gt=0)
    """Largest file the agent may upload, show or generate."""
    problems: list[str] = Field(default_factory=list)
    """Uploads that cannot be used (missing, too large, not an image), one message each
    naming the key and the file: the worker fails the turn with them."""


class MediaRef(_Message):
    """A file a tool result shows the model (``tools.ToolResult.media``)."""

    path: str
    """As the agent gave it (what ``FileReadRequest.path`` names)."""
    mime: str
    size: int = Field(ge=0)


class _Caller(_Message):
    """Who asks (as in ``tools``): the gateway checks the turn's capability."""

    run_id: str
    agent_id: str
    label: str
    phase: Phase
    token: str = Field(default="", repr=False)
    turn_id: str


class FileReadRequest(_Caller):
    """A chunk of a file of the agent's: a path it may read, or one of its uploads."""

    kind: Literal["file_read_request"] = "file_read_request"
    path: str | None = None
    upload: int | None = Field(default=None, ge=0)
    offset: int = Field(default=0, ge=0)
    version: str | None = None
    """The version the first chunk reported (None: the first chunk)."""


class FileWriteRequest(_Caller):
    """A chunk of a file the worker writes into the agent's workspace (generated media).

    The first chunk (``offset`` 0) creates or truncates the file, and declares ``total``,
    checked against the agent's limit; the others append in order."""

    kind: Literal["file_write_request"] = "file_write_request"
    path: str
    offset: int = Field(ge=0)
    data: str
    """Base64 of the chunk's bytes."""
    total: int = Field(ge=0)


class RunFileRequest(_Message):
    """A chunk of a run's file, ``<label>/<path>``, for the API (tenant already checked)."""

    kind: Literal["run_file_request"] = "run_file_request"
    run_id: str
    path: str
    offset: int = Field(default=0, ge=0)
    version: str | None = None


class RunFilesRequest(_Message):
    """The media files of a run (images, audio) under each agent's label."""

    kind: Literal["run_files_request"] = "run_files_request"
    run_id: str


class FileChunk(_Message):
    """Part of a file: ``data`` holds bytes ``offset`` .. ``offset + len`` of ``size``."""

    kind: Literal["file_chunk"] = "file_chunk"
    path: str
    mime: str
    size: int = Field(ge=0)
    offset: int = Field(ge=0)
    data: str
    """Base64."""
    version: str
    """Changes whenever the file does (size and modification time)."""


class FileWritten(_Message):
    """A write chunk was stored; ``size`` bytes of the file are written so far."""

    kind: Literal["file_written"] = "file_written"
    path: str
    size: int = Field(ge=0)


class RunFile(_Message):
    """One media file of a run."""

    path: str
    """``<label>/<path in the agent's workspace>``."""
    mime: str
    size: int = Field(ge=0)


class RunFiles(_Message):
    kind: Literal["run_files"] = "run_files"
    files: list[RunFile] = Field(default_factory=list)


FilesRequest = Annotated[
    FileReadRequest | FileWriteRequest | RunFileRequest | RunFilesRequest,
    Field(discriminator="kind"),
]
FilesRequestAdapter: TypeAdapter[FilesRequest] = TypeAdapter(FilesRequest)
FilesReply = Annotated[FileChunk | FileWritten | RunFiles | ErrorReply, Field(discriminator="kind")]
FilesReplyAdapter: TypeAdapter[FilesReply] = TypeAdapter(FilesReply)

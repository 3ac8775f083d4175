"""A turn's images: uploads into the user message, tool results shown as image parts.

The mcp-gateway holds the files; the worker reads them in chunks (``massgen_proto.media``)
through a ``FileChannel`` (the service's NATS requests) and turns them into OpenAI-style
``image_url`` content parts, which litellm translates for Anthropic and Gemini:

- **uploads**: the agent's ``upload_files`` images, listed by the gateway with the
  agent's tools (``AgentMedia``), are appended to the last user message of the turn
  (the task) as image parts: a URL as given, a local file as a ``data:`` URL; a sound
  (``audio_path``, WAV or MP3) as an ``input_audio`` part, which carries the bytes;
- **tool images**: a tool result carrying ``MediaRef``s (``read_multimodal_files``) is
  followed by a user message holding those images, since a tool message has text only;
- **generated files** go the other way (``generation``): ``write_file`` stores them in
  the agent's workspace.

``media_broker.MediaBroker`` puts it together for a turn.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence

from massgen_proto.json_types import JsonObject, JsonValue
from massgen_proto.media import (
    CHUNK_BYTES,
    FileChunk,
    FileReadRequest,
    FilesReply,
    FileWriteRequest,
    FileWritten,
)
from massgen_proto.messages import TurnRequest

from .wire import Message

__all__ = [
    "FileChannel",
    "MediaError",
    "audio_part",
    "data_url",
    "file_part",
    "image_part",
    "read_file",
    "shown_part",
    "with_parts",
    "write_file",
]


class MediaError(Exception):
    """A file could not be read or written (the gateway's message, naming the file)."""


FileChannel = Callable[[FileReadRequest | FileWriteRequest], Awaitable[FilesReply]]
"""Sends one file request to the gateway and returns its reply."""


def _read_request(
    turn: TurnRequest, path: str | None, upload: int | None, offset: int, version: str | None
) -> FileReadRequest:
    return FileReadRequest(
        run_id=turn.run_id, agent_id=turn.agent_id, label=turn.label, phase=turn.phase,
        token=turn.token, turn_id=turn.turn_id, path=path, upload=upload, offset=offset,
        version=version,
    )  # fmt: skip


def _write_request(
    turn: TurnRequest, path: str, offset: int, piece: bytes, total: int
) -> FileWriteRequest:
    return FileWriteRequest(
        run_id=turn.run_id, agent_id=turn.agent_id, label=turn.label, phase=turn.phase,
        token=turn.token, turn_id=turn.turn_id, path=path, offset=offset,
        data=base64.b64encode(piece).decode("ascii"), total=total,
    )  # fmt: skip


async def read_file(
    channel: FileChannel, turn: TurnRequest, *, path: str | None = None, upload: int | None = None
) -> tuple[bytes, str]:
    """``(bytes, media type)`` of an agent's file: a path it may read, or an upload.

    Raises:
        MediaError: the gateway refused or the file changed meanwhile (its message).
    """
    data = bytearray()
    version: str | None = None
    while True:
        reply = await channel(_read_request(turn, path, upload, len(data), version))
        if not isinstance(reply, FileChunk):
            raise MediaError(getattr(reply, "error", f"unexpected reply {reply.kind}"))
        data += base64.b64decode(reply.data)
        version = reply.version
        if len(data) >= reply.size or not reply.data:
            return bytes(data[: reply.size]), reply.mime


async def write_file(channel: FileChannel, turn: TurnRequest, path: str, data: bytes) -> int:
    """Store ``data`` at ``path`` (the agent's workspace); returns the size written.

    Raises:
        MediaError: the gateway refused (permission, size limit: its message).
    """
    offset = 0
    while True:
        piece = data[offset : offset + CHUNK_BYTES]
        reply = await channel(_write_request(turn, path, offset, piece, len(data)))
        if not isinstance(reply, FileWritten):
            raise MediaError(getattr(reply, "error", f"unexpected reply {reply.kind}"))
        offset += len(piece)
        if offset >= len(data):
            return reply.size


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_part(url: str) -> JsonObject:
    """An OpenAI chat ``image_url`` content part."""
    return {"type": "image_url", "image_url": {"url": url}}


def file_part(name: str, mime: str, data: bytes) -> JsonObject:
    """An OpenAI chat ``file`` content part carrying a document (a PDF) inline; litellm
    turns it into each provider's document block."""
    return {"type": "file", "file": {"filename": name, "file_data": data_url(mime, data)}}


def shown_part(name: str, mime: str, data: bytes) -> JsonObject:
    """The part that shows a picture or a PDF to the model."""
    if mime == "application/pdf":
        return file_part(name, mime, data)
    return image_part(data_url(mime, data))


_AUDIO_FORMATS = {"audio/wav": "wav", "audio/mpeg": "mp3"}


def audio_part(mime: str, data: bytes) -> JsonObject:
    """An OpenAI chat ``input_audio`` content part (litellm translates it for Gemini).

    Raises:
        MediaError: a sound format the part cannot name.
    """
    audio_format = _AUDIO_FORMATS.get(mime)
    if audio_format is None:
        raise MediaError(f"{mime} cannot be sent as audio (wav and mp3 only)")
    encoded = base64.b64encode(data).decode("ascii")
    return {"type": "input_audio", "input_audio": {"data": encoded, "format": audio_format}}


def with_parts(message: Message, parts: Sequence[JsonObject]) -> None:
    """Append content parts to a message, turning text content into a text part first."""
    content = message.get("content")
    current: list[JsonValue] = []
    if isinstance(content, str) and content:
        current.append({"type": "text", "text": content})
    elif isinstance(content, list):
        current.extend(content)
    message["content"] = [*current, *parts]

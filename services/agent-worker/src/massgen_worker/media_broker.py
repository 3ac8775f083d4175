"""A turn's tool broker with its media: uploads, images of tool results, generation tools.

``MediaBroker`` wraps the turn's gateway tools (``GatewayBroker``): its listing adds the
generation tools the gateway's ``AgentMedia`` switches on; a call of one of them runs in
the worker (``generation``), any other goes to the gateway, and a result that carries
``MediaRef``s leaves their images for ``take_images``. The turn asks for the rest
through ``attach_uploads`` (before its first model call) and ``take_images`` (after
each batch of tool results); both do nothing for a broker without media.
"""

from __future__ import annotations

import posixpath
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import structlog
from massgen_proto.config.multimodal import FILE_SEARCH_TYPES
from massgen_proto.json_types import JsonObject, JsonValue
from massgen_proto.media import (
    AgentMedia,
    FileReadRequest,
    FilesReply,
    FileWriteRequest,
    MediaRef,
    Upload,
)
from massgen_proto.messages import TurnRequest
from massgen_proto.skills import AgentSkills

from .file_search import Document, FileSearchStores, file_search_tool
from .generation import AUDIO_TOOL, GeneratedFile, generate, generation_tools
from .input_tools import EDIT_TOOL, TRANSCRIBE_TOOL, edit_image, input_tools, transcribe_audio
from .media import (
    MediaError,
    audio_part,
    data_url,
    file_part,
    image_part,
    read_file,
    shown_part,
    with_parts,
)
from .stream import ToolCall
from .video import video_parts
from .video_generation import VIDEO_TOOL, generate_video, video_tools
from .wire import Message, Tool, function_name

__all__ = ["GatewayBroker", "MediaBroker", "attach_uploads", "take_images"]

log = structlog.get_logger("massgen_worker.media")


class GatewayBroker(Protocol):
    """What ``MediaBroker`` needs of the turn's gateway tools."""

    media: AgentMedia | None
    """From the last tool listing."""
    last_media: list[MediaRef]
    """From the last tool call's result."""

    async def list_tools(self) -> list[Tool]: ...

    async def call(self, call: ToolCall) -> str: ...

    async def files(self, request: FileReadRequest | FileWriteRequest) -> FilesReply: ...


class MediaBroker:
    """The turn's tools with its media (see the module docstring)."""

    def __init__(
        self, inner: GatewayBroker, turn: TurnRequest, stores: FileSearchStores | None = None
    ) -> None:
        self.inner = inner
        self.turn = turn
        self.stores = stores
        """Where file search keeps the run's vector stores (None: documents go inline)."""
        self._search_problem: MediaError | None = None
        self._pending: list[tuple[MediaRef, list[JsonObject]]] = []
        """Files of the last tool results, with the parts that show them."""
        self._own: set[str] = set()
        self._generated = 0

    @property
    def skills(self) -> AgentSkills | None:
        """The run's skills, from the inner broker's last listing."""
        found = getattr(self.inner, "skills", None)
        return found if isinstance(found, AgentSkills) else None

    async def list_tools(self) -> list[Tool]:
        tools = await self.inner.list_tools()
        media = self.inner.media
        if media is not None:
            own = generation_tools(media.image_generation, media.audio_generation)
            own += input_tools(media.image_generation, media.audio_understanding)
            own += video_tools(media.video_generation)
            self._own = {name for t in own if (name := function_name(t))}
            tools = [*tools, *own, *await self._file_search(media)]
        return tools

    def _searched(self, upload: Upload) -> bool:
        """Whether a ``file_path`` upload goes to file search rather than inline."""
        searching = self.stores is not None and self.turn.backend.type in FILE_SEARCH_TYPES
        return searching and upload.kind == "file"

    async def _file_search(self, media: AgentMedia) -> list[Tool]:
        """The ``file_search`` tool over the agent's documents (a failure waits for
        ``upload_parts``, which fails the turn with it)."""
        documents = [u for u in media.uploads if self._searched(u)]
        if not documents or self.stores is None or media.problems:
            return []

        async def read() -> list[Document]:
            found = []
            for upload in documents:
                data, mime = await read_file(self.inner.files, self.turn, upload=upload.index)
                found.append(Document(_file_name(upload.name), mime, data))
            return found

        t = self.turn
        try:
            store = await self.stores.store_for(t.run_id, t.agent_id, t.backend, read)
        except MediaError as error:
            self._search_problem = error
            return []
        return [file_search_tool(store)]

    async def call(self, call: ToolCall) -> str:
        if call.name in self._own:
            return await self._generate(call)
        text = await self.inner.call(call)
        for ref in self.inner.last_media:
            try:
                data, mime = await read_file(self.inner.files, self.turn, path=ref.path)
                parts = await self._shown(posixpath.basename(ref.path), mime, data)
            except MediaError as error:
                return f"{text}\nError: {ref.path} could not be shown: {error}"
            self._pending.append((ref.model_copy(update={"mime": mime}), parts))
        return text

    async def _shown(self, name: str, mime: str, data: bytes) -> list[JsonObject]:
        """The parts showing a file to the model (a video: itself or its frames)."""
        if mime.startswith("video/"):
            b = self.turn.backend
            return await video_parts(b.type, b.model, name, mime, data)
        return [shown_part(name, mime, data)]

    async def _generate(self, call: ToolCall) -> str:
        arguments = call.arguments if isinstance(call.arguments, dict) else {}
        self._generated += 1
        try:
            if call.name == TRANSCRIBE_TOOL:
                text = await transcribe_audio(dict(arguments), self.turn, self.inner.files)
                log.info("media_transcribed", chars=len(text))
                return f"Transcript of {arguments.get('path')}:\n{text}"
            made = await self._make(call.name, dict(arguments))
        except MediaError as error:
            return f"Error: {error}"
        log.info("media_generated", tool=call.name, size=made.size, mime=made.mime)
        what = "audio" if call.name == AUDIO_TOOL else made.mime.partition("/")[0]
        return (
            f"Saved the generated {what} to {made.path} in your workspace ({made.size} bytes, "
            f"{made.mime}). In your answer, refer to it as {self.turn.label}/{made.path}."
        )

    async def _make(self, name: str, arguments: dict[str, object]) -> GeneratedFile:
        files, count = self.inner.files, self._generated
        if name == EDIT_TOOL:
            return await edit_image(arguments, self.turn, files, count)
        if name == VIDEO_TOOL:
            return await generate_video(arguments, self.turn, files, count)
        return await generate(name, arguments, self.turn, files, count)

    async def upload_parts(self) -> list[JsonObject]:
        """Image (and ``input_audio``) parts of the agent's uploads, in config order.

        Raises:
            MediaError: an upload cannot be used (names the config key and the file).
        """
        media = self.inner.media
        if media is None:
            return []
        if media.problems:
            raise MediaError("; ".join(media.problems))
        if self._search_problem is not None:
            raise self._search_problem
        parts: list[JsonObject] = []
        for upload in media.uploads:
            if self._searched(upload):
                continue
            if upload.url is not None:
                parts.append(image_part(upload.url))
                continue
            data, mime = await read_file(self.inner.files, self.turn, upload=upload.index)
            if mime.startswith("audio/"):
                parts.append(audio_part(mime, data))
            elif mime == "application/pdf":
                parts.append(file_part(upload.name, mime, data))
            elif mime.startswith("video/"):
                parts += await self._shown(upload.name, mime, data)
            else:
                parts.append(image_part(data_url(mime, data)))
        return parts

    def take_images(self) -> Message | None:
        """The user message showing the images of the last tool results (None: none)."""
        if not self._pending:
            return None
        pending, self._pending = self._pending, []
        names = ", ".join(ref.path for ref, _ in pending)
        images = all(ref.mime.startswith("image/") for ref, _ in pending)
        what = "images" if images else "files"
        parts: list[JsonValue] = [{"type": "text", "text": f"The {what} you asked to see: {names}"}]
        parts += [part for _, shown in pending for part in shown]
        return {"role": "user", "content": parts}


def _file_name(name: str) -> str:
    """A document's file name (a URL's last path segment)."""
    if "://" in name:
        name = urlsplit(name).path
    return posixpath.basename(name) or "document.pdf"


@runtime_checkable
class _WithMedia(Protocol):
    async def upload_parts(self) -> list[JsonObject]: ...

    def take_images(self) -> Message | None: ...


async def attach_uploads(broker: object, messages: list[Message]) -> None:
    """Append the agent's upload images to the last user message of ``messages``.

    Raises:
        MediaError: an upload cannot be used (names the config key and the file).
    """
    if not isinstance(broker, _WithMedia):
        return
    parts = await broker.upload_parts()
    users = [m for m in messages if m.get("role") == "user"]
    if parts and users:
        with_parts(users[-1], parts)
        log.info("uploads_attached", images=len(parts))


def take_images(broker: object) -> Message | None:
    """The user message showing the images the last tool results referred to."""
    return broker.take_images() if isinstance(broker, _WithMedia) else None

"""Reading and writing media files in chunks (``massgen_proto.media``), on checked paths.

A chunk read opens the file afresh, checks it is a regular file within the size limit
and still the version the reader started with, and returns ``CHUNK_BYTES`` of it. Paths
an agent gave are walked with ``fdwalk`` (``O_NOFOLLOW`` on every component), as the
built-in tools do. What a file is comes from its first bytes, not its name: a model is
only ever shown a real image, and a config's upload path cannot make the gateway send
any other file to a provider.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat

from massgen_proto.media import CHUNK_BYTES, FileChunk, FileWritten

from .doc_types import DOCUMENT_TYPES, document_type
from .fdwalk import ToolError, lexists, open_file, open_parent
from .permissions import AccessLedger, Decision
from .video_types import VIDEO_TYPES, sniff_video

__all__ = [
    "AUDIO_TYPES",
    "IMAGE_TYPES",
    "MEDIA_TYPES",
    "PDF_TYPES",
    "VIDEO_TYPES",
    "MediaError",
    "chunk_of",
    "describe",
    "open_checked",
    "open_upload",
    "sniff",
    "write_chunk",
]

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""What a chat model takes as an image part."""
AUDIO_TYPES = frozenset({"audio/mpeg", "audio/wav"})
"""What a chat model takes as an ``input_audio`` part (OpenAI's mp3 and wav formats)."""
MEDIA_TYPES = IMAGE_TYPES | AUDIO_TYPES | VIDEO_TYPES
"""What counts as a run's media artifact (listed by the API, shown by the page)."""
PDF_TYPES = frozenset({"application/pdf"})
"""What a model that reads documents takes as a ``file`` part (shown, never an artifact)."""


class MediaError(Exception):
    """A file cannot be served or written (message for the caller: names the file)."""


def sniff(head: bytes) -> str | None:
    """The media type of a file from its first 16 bytes (None: not one we know)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return sniff_video(head)


def _version(st: os.stat_result) -> str:
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def open_checked(decision: Decision) -> int:
    """A read-only descriptor of an allowed path, walked with ``O_NOFOLLOW``.

    Raises:
        ToolError: not found, a folder.
        SymlinkRace: a symlink appeared on the path after its check.
    """
    parent, name = open_parent(decision)
    try:
        if name is None:
            raise ToolError(f"{decision.raw}: is a folder")
        return open_file(decision, os.O_RDONLY, parent, name)
    finally:
        os.close(parent)


def open_upload(path: str) -> int:
    """A read-only descriptor of a config's local upload path.

    Raises:
        MediaError: it cannot be opened (the message names the path).
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise MediaError(f"cannot open {path}: {error.strerror}") from None


def _mb(size: int) -> str:
    return f"{size / 1048576:.1f} MB"


def describe(
    fd: int, shown: str, max_bytes: int, kinds: frozenset[str] = MEDIA_TYPES
) -> tuple[os.stat_result, str]:
    """``(stat, media type)`` of an open file that may be served.

    Raises:
        MediaError: not a regular file, over ``max_bytes``, or not one of ``kinds``.
    """
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise MediaError(f"{shown}: not a regular file")
    if st.st_size > max_bytes:
        raise MediaError(
            f"{shown}: {_mb(st.st_size)} is over the limit of {_mb(max_bytes)} "
            "(backend.media_max_file_size_mb)"
        )
    mime = sniff(os.pread(fd, 16, 0))
    if mime is None and kinds & (DOCUMENT_TYPES - PDF_TYPES):
        mime = document_type(fd, shown)  # write_document's files: by name and content
    if mime is None or mime not in kinds:
        what = ", ".join(sorted(kinds))
        raise MediaError(f"{shown}: not a supported media file ({what}), by its content")
    return st, mime


def chunk_of(
    fd: int,
    shown: str,
    offset: int,
    version: str | None,
    max_bytes: int,
    kinds: frozenset[str] = MEDIA_TYPES,
) -> FileChunk:
    """The chunk at ``offset`` of the open file ``fd`` (closed here).

    Args:
        fd: the file, open for reading.
        shown: the path as the caller named it (in the reply and in errors).
        offset: where the chunk starts.
        version: the version of the first chunk (None: this is the first).
        max_bytes: the largest file served.
        kinds: the media types served.

    Raises:
        MediaError: not a regular file, too large, not one of ``kinds``, or changed
            since the first chunk.
    """
    try:
        st, mime = describe(fd, shown, max_bytes, kinds)
        if version is not None and version != _version(st):
            raise MediaError(f"{shown}: the file changed while it was being read; read it again")
        data = os.pread(fd, CHUNK_BYTES, offset) if offset < st.st_size else b""
    finally:
        os.close(fd)
    return FileChunk(
        path=shown, mime=mime, size=st.st_size, offset=offset,
        data=base64.b64encode(data).decode("ascii"), version=_version(st),
    )  # fmt: skip


def write_chunk(
    decision: Decision, offset: int, data: str, total: int, max_bytes: int, ledger: AccessLedger
) -> FileWritten:
    """Store one chunk of a generated file at an allowed path.

    The chunk at offset 0 creates (or truncates) the file and its folders; every later
    chunk must start where the file ends, so chunks are written once and in order.

    Raises:
        MediaError: over the limit, not base64, out of order.
        ToolError, SymlinkRace: as the built-in tools' writes.
    """
    if total > max_bytes:
        raise MediaError(
            f"{decision.raw}: {_mb(total)} is over the limit of {_mb(max_bytes)} "
            "(backend.media_max_file_size_mb)"
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"{decision.raw}: the chunk is not base64") from None
    if offset + len(raw) > total:
        raise MediaError(f"{decision.raw}: the chunk goes past the declared size {total}")
    created: list[str] = []
    parent, name = open_parent(decision, create=offset == 0, created=created)
    try:
        if name is None:
            raise ToolError(f"{decision.raw}: is a folder")
        existed = lexists(parent, name)
        flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if offset == 0 else os.O_APPEND)
        fd = open_file(decision, flags, parent, name)
    finally:
        os.close(parent)
    try:
        if offset and os.fstat(fd).st_size != offset:
            raise MediaError(f"{decision.raw}: chunk at {offset} is out of order")
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    for path in created:
        ledger.record_created(path)
    if offset == 0 and not existed:
        ledger.record_created(decision.path)
    return FileWritten(path=decision.raw, size=size)

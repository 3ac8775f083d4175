"""What a document file is, from its content: the artifacts ``write_document`` makes.

A PDF is known by its first bytes (``media_files.sniff``). DOCX and PPTX files are ZIP
archives, told apart by the part that makes them one (only the archive's directory is
read, nothing is unpacked). Text (TXT, Markdown) is a file whose start is UTF-8 without
NUL bytes, told apart by its name's suffix, since the content cannot say.
"""

from __future__ import annotations

import os
import zipfile

__all__ = ["DOCUMENT_SUFFIXES", "DOCUMENT_TYPES", "MIME", "document_type"]

MIME: dict[str, str] = {
    "txt": "text/plain",
    "md": "text/markdown",
    "pdf": "application/pdf",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
"""Format (also the file suffix) -> media type."""
DOCUMENT_TYPES = frozenset(MIME.values())
DOCUMENT_SUFFIXES = frozenset(f".{fmt}" for fmt in MIME)

_ZIP_PARTS = {
    "word/document.xml": MIME["docx"],
    "ppt/presentation.xml": MIME["pptx"],
}
_TEXT_PROBE = 4096
"""Bytes of a text file looked at (enough to tell text from binary)."""


def _zip_type(fd: int) -> str | None:
    try:
        with open(os.dup(fd), "rb") as handle, zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return next((mime for part, mime in _ZIP_PARTS.items() if part in names), None)


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A probe may end inside a multi-byte character: only that is forgiven.
        return error.start >= len(head) - 3 and error.reason == "unexpected end of data"
    return True


def document_type(fd: int, name: str) -> str | None:
    """The document media type of the open regular file ``fd`` named ``name`` (None:
    not a document ``write_document`` makes)."""
    suffix = os.path.splitext(name)[1].lower()
    head = os.pread(fd, _TEXT_PROBE, 0)
    if suffix == ".pdf":
        return MIME["pdf"] if head.startswith(b"%PDF-") else None
    if suffix in (".docx", ".pptx"):
        mime = _zip_type(fd) if head.startswith(b"PK\x03\x04") else None
        return mime if mime == MIME[suffix[1:]] else None
    if suffix in (".txt", ".md"):
        return MIME[suffix[1:]] if _is_text(head) else None
    return None

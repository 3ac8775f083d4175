"""Which files are videos, by their first bytes (``media_files.sniff`` asks here).

ISO media files (MP4, MOV, 3GP) open with an ``ftyp`` box naming a brand: the video
brands are taken, the image ones that share the box (HEIC, AVIF) are not. WebM opens
with the EBML magic (Matroska too, served as WebM: the two differ only in a doctype
further in).
"""

from __future__ import annotations

__all__ = ["VIDEO_TYPES", "sniff_video"]

VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm"})
"""Videos an agent may upload, show its model, or generate."""

_MP4_BRANDS = (b"iso", b"mp4", b"mp7", b"avc", b"M4V", b"dash", b"3gp", b"3g2", b"MSNV", b"f4v")
_EBML = b"\x1a\x45\xdf\xa3"


def sniff_video(head: bytes) -> str | None:
    """``video/*`` of a file from its first 16 bytes (None: not a video we know)."""
    if head.startswith(_EBML):
        return "video/webm"
    if head[4:8] != b"ftyp":
        return None
    brand = head[8:12]
    if brand == b"qt  ":
        return "video/quicktime"
    return "video/mp4" if brand.startswith(_MP4_BRANDS) else None

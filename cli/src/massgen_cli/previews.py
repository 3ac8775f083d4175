"""Small previews of a run's generated images under the artifact list, in terminals
that show pictures inline.

Two protocols are spoken: kitty's graphics protocol (kitty, Ghostty; PNG only, as kitty
decodes no other format itself) and iTerm2's inline images (iTerm2, WezTerm; any
format the terminal decodes). The terminal is recognised by the variables those
terminals set (``TERM``, ``TERM_PROGRAM``, ``LC_TERMINAL``, ``KITTY_WINDOW_ID``), and
only when the stream is a terminal: a pipe, a file, ``--output json`` or tmux/screen
(which drop these sequences unless told to pass them on) get the plain lines.
``MASSGEN_IMAGE_PREVIEWS=0`` turns previews off.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TextIO

from .artifacts import Artifact, describe

__all__ = ["MAX_PREVIEW_BYTES", "PREVIEW_CELLS", "Protocol", "preview", "protocol", "write"]

Protocol = Literal["kitty", "iterm"]

PREVIEW_CELLS = 24
"""Width of a preview, in terminal columns (the height follows the picture)."""
MAX_PREVIEW_BYTES = 8 * 1024 * 1024
"""Larger pictures are named only: the escape sequence would be too long to be small."""
_KITTY_CHUNK = 4096
"""Base64 characters per kitty escape (the protocol's limit per chunk)."""
_OFF = frozenset({"0", "no", "off", "false"})


def protocol(env: Mapping[str, str], stream: TextIO) -> Protocol | None:
    """The inline-image protocol of the terminal behind ``stream`` (None: none, or not a
    terminal)."""
    if env.get("MASSGEN_IMAGE_PREVIEWS", "").strip().lower() in _OFF:
        return None
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):  # closed or not a real stream
        return None
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if "TMUX" in env or term.startswith(("screen", "tmux")):
        return None
    if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm"
    if term in ("xterm-kitty", "xterm-ghostty") or program == "ghostty":
        return "kitty"
    return "kitty" if "KITTY_WINDOW_ID" in env else None


def _kitty(data: bytes) -> str:
    payload = base64.b64encode(data).decode("ascii")
    pieces = [payload[i : i + _KITTY_CHUNK] for i in range(0, len(payload), _KITTY_CHUNK)]
    out = []
    for index, piece in enumerate(pieces):
        more = int(index < len(pieces) - 1)
        # a=T: transmit and show; f=100: PNG; c: columns; q=2: no replies on stdin.
        keys = f"a=T,f=100,c={PREVIEW_CELLS},q=2,m={more}" if index == 0 else f"m={more}"
        out.append(f"\x1b_G{keys};{piece}\x1b\\")
    return "".join(out)


def _iterm(data: bytes, name: str) -> str:
    label = base64.b64encode(name.encode("utf-8")).decode("ascii")
    payload = base64.b64encode(data).decode("ascii")
    return (
        f"\x1b]1337;File=name={label};size={len(data)};width={PREVIEW_CELLS};"
        f"preserveAspectRatio=1;inline=1:{payload}\x07"
    )


def preview(artifact: Artifact, kind: Protocol) -> str | None:
    """The escape sequence showing ``artifact`` (ending in a newline), or None when it is
    not a picture the terminal can show small."""
    if not artifact.mime.startswith("image/") or not artifact.data:
        return None
    if len(artifact.data) > MAX_PREVIEW_BYTES:
        return None
    if kind == "kitty":
        return _kitty(artifact.data) + "\n" if artifact.mime == "image/png" else None
    return _iterm(artifact.data, artifact.path.rsplit("/", 1)[-1]) + "\n"


def write(
    artifacts: list[Artifact], folder: Path | None, stream: TextIO, env: Mapping[str, str]
) -> None:
    """One line per artifact on ``stream`` (``artifacts.describe``), each picture
    followed by its preview where the terminal shows images."""
    kind = protocol(env, stream)
    for artifact, line in zip(artifacts, describe(artifacts, folder), strict=True):
        print(line, file=stream)
        shown = preview(artifact, kind) if kind is not None else None
        if shown is not None:
            stream.write(shown)
    stream.flush()

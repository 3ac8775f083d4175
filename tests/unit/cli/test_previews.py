"""Image previews under the artifact list: which terminals get which escape sequence, and
that the sequence carries the picture (decoded back here); never for a pipe or a file."""

from __future__ import annotations

import base64
import io
import os
import re
import threading

import pytest
from massgen_cli.artifacts import Artifact
from massgen_cli.previews import MAX_PREVIEW_BYTES, PREVIEW_CELLS, preview, protocol, write

from tests.integration.gateway.test_media import png

PICTURE = png(120, 80, seed=4)  # ~29 KB: several kitty chunks
KITTY = re.compile(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\")


class Tty(io.StringIO):
    """A stream that says it is a terminal (the real pty is in ``test_write_on_a_pty``)."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TERM": "xterm-kitty"}, "kitty"),
        ({"TERM": "xterm-256color", "KITTY_WINDOW_ID": "1"}, "kitty"),
        ({"TERM": "xterm-ghostty"}, "kitty"),
        ({"TERM": "xterm-256color", "TERM_PROGRAM": "iTerm.app"}, "iterm"),
        ({"TERM": "xterm-256color", "LC_TERMINAL": "iTerm2"}, "iterm"),
        ({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, "iterm"),
        ({"TERM": "xterm-256color"}, None),
        ({"TERM": "dumb"}, None),
        ({}, None),
        ({"TERM": "xterm-kitty", "TMUX": "/tmp/tmux-0/default,1,0"}, None),
        ({"TERM": "tmux-256color", "KITTY_WINDOW_ID": "1"}, None),
        ({"TERM": "xterm-kitty", "MASSGEN_IMAGE_PREVIEWS": "0"}, None),
    ],
)
def test_the_terminal_is_recognised_by_its_variables(env, expected):
    assert protocol(env, Tty()) == expected


def test_never_when_the_stream_is_not_a_terminal(tmp_path):
    kitty = {"TERM": "xterm-kitty"}
    assert protocol(kitty, io.StringIO()) is None
    with open(tmp_path / "out.txt", "w") as file:
        assert protocol(kitty, file) is None
    assert file.closed and protocol(kitty, file) is None  # isatty raises: not a terminal


def artifact(data: bytes = PICTURE, mime: str = "image/png", path: str = "agent1/a/fox.png"):
    return Artifact(path, mime, len(data), data)


def test_kitty_sequence_carries_the_png_in_chunks():
    shown = preview(artifact(), "kitty")
    assert shown is not None and shown.endswith("\x1b\\\n")
    pieces = KITTY.findall(shown)
    assert len(pieces) > 1 and all(len(p[1]) <= 4096 for p in pieces)
    assert pieces[0][0] == f"a=T,f=100,c={PREVIEW_CELLS},q=2,m=1"
    assert [keys for keys, _ in pieces[1:]] == ["m=1"] * (len(pieces) - 2) + ["m=0"]
    assert base64.b64decode("".join(p[1] for p in pieces)) == PICTURE


def test_iterm_sequence_names_the_file_and_carries_the_picture():
    jpeg = b"\xff\xd8\xff\xe0" + bytes(200)
    shown = preview(artifact(jpeg, "image/jpeg", "agent2/pic.jpg"), "iterm")
    match = re.fullmatch(r"\x1b\]1337;File=([^:]*):([A-Za-z0-9+/=]*)\x07\n", shown or "")
    assert match is not None
    keys = dict(part.split("=", 1) for part in match[1].split(";"))
    assert base64.b64decode(keys["name"]) == b"pic.jpg"
    assert keys["size"] == str(len(jpeg)) and keys["inline"] == "1"
    assert keys["width"] == str(PREVIEW_CELLS) and keys["preserveAspectRatio"] == "1"
    assert base64.b64decode(match[2]) == jpeg


def test_what_is_not_previewed():
    assert preview(artifact(b"ID3...", "audio/mpeg"), "iterm") is None
    assert preview(artifact(b"%PDF-1.4", "application/pdf"), "kitty") is None
    assert preview(artifact(b"\xff\xd8\xff", "image/jpeg"), "kitty") is None  # kitty: PNG only
    huge = artifact(b"\x89PNG" + bytes(MAX_PREVIEW_BYTES), "image/png")
    assert preview(huge, "kitty") is None and preview(huge, "iterm") is None


def test_write_on_a_pty(tmp_path):
    files = [artifact(), artifact(b"%PDF-1.7 x", "application/pdf", "agent1/r.pdf")]
    leader, follower = os.openpty()
    received: list[bytes] = []
    # The terminal's buffer is smaller than the preview: read while it is written.
    reader = threading.Thread(target=_drain, args=(leader, received))
    reader.start()
    try:
        with open(follower, "w", closefd=False) as terminal:
            write(files, tmp_path, terminal, {"TERM": "xterm-kitty"})
    finally:
        os.close(follower)
        reader.join(timeout=30)
        os.close(leader)
    text = b"".join(received).decode().replace("\r\n", "\n")
    lines = [line for line in text.split("\n") if line.startswith("artifact: ")]
    assert lines == [
        f"artifact: agent1/a/fox.png ({len(PICTURE) / 1024:.1f} KB, image/png) -> "
        f"{tmp_path}/files/agent1/a/fox.png",
        f"artifact: agent1/r.pdf (0.0 KB, application/pdf) -> {tmp_path}/files/agent1/r.pdf",
    ]
    # The preview sits right under the picture's line, and only there.
    first, rest = text.split(lines[0] + "\n", 1)
    assert first == "" and rest.startswith("\x1b_Ga=T,f=100,")
    assert base64.b64decode("".join(p[1] for p in KITTY.findall(rest))) == PICTURE
    assert rest.count("\x1b_G") == len(KITTY.findall(text))


def _drain(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end is closed and everything was read
            return
        if not chunk:
            return
        into.append(chunk)


def test_write_to_a_file_or_a_plain_terminal_has_the_lines_only(tmp_path):
    files = [artifact()]
    for stream, env in ((io.StringIO(), {"TERM": "xterm-kitty"}), (Tty(), {"TERM": "xterm"})):
        write(files, None, stream, env)
        assert stream.getvalue() == (
            f"artifact: agent1/a/fox.png ({len(PICTURE) / 1024:.1f} KB, image/png)\n"
        )

"""``massgen`` on a real terminal (a pty): artifacts are named, generated pictures are
previewed where the terminal shows images, and documents (``write_document``) are
artifacts like pictures.

The agent generates a picture (the fake's images API) and writes a PDF report; the
command runs with its stdin, stdout and stderr on a pty, as in a terminal window. With
a kitty-like ``TERM`` the picture's kitty escape sequence follows its artifact line;
with a plain ``TERM``, on a pipe, and with ``--output json``, nothing but the text.
"""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.e2e.e2e_support import kill_tree
from tests.integration.gateway.test_media import png
from tests.support.fakes.openai_server import answer, text, tool_call, vote

pytestmark = pytest.mark.timeout(300)

KITTY = re.compile(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\")
PICTURE = png(96, 64, seed=9)
REPORT = "# Fox report\n\n- The fox is red.\n- It sits in snow."


def config(base_url: str) -> dict:
    return {"agents": [{"id": "painter", "backend": {
        "type": "openai", "model": "gpt-4o", "base_url": base_url, "api_key": "sk-fake",
        "cwd": "ws", "enable_image_generation": True, "enable_file_generation": True}}]}  # fmt: skip


def script(fake) -> None:
    fake.script_media("images", "gpt-image-1", [PICTURE])
    fake.script("gpt-4o", [
        tool_call("generate_image", {"prompt": "a red fox", "path": "art/fox.png"}),
        tool_call("mcp__workspace__write_document",
                  {"path": "report.pdf", "format": "pdf", "content": REPORT}),
        answer("See agent1/art/fox.png and agent1/report.pdf."), vote("agent1"),
        text("The fox: agent1/art/fox.png, agent1/report.pdf"),
    ])  # fmt: skip


def on_pty(cli, args: list[str], term: str, timeout: float = 150) -> tuple[int, str]:
    """Run ``massgen ARGS`` with a pty as its terminal; its exit code and everything it
    wrote there (stdout and stderr, as the terminal got them)."""
    env = {k: v for k, v in cli.env.items() if k not in ("TMUX", "TERM_PROGRAM", "LC_TERMINAL")}
    env.pop("KITTY_WINDOW_ID", None)
    env["TERM"] = term
    leader, follower = os.openpty()
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer has closed the pty
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.Popen(cli.command(*args), cwd=cli.cwd, env=env, stdin=follower,
                            stdout=follower, stderr=follower, start_new_session=True)  # fmt: skip
    os.close(follower)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        raise AssertionError(f"massgen did not exit within {timeout}s") from None
    reader.join(timeout=30)
    os.close(leader)
    return code, b"".join(received).decode("utf-8", "replace").replace("\r\n", "\n")


def artifact_lines(output: str) -> list[str]:
    return [line for line in output.split("\n") if line.startswith("artifact: ")]


def test_a_kitty_terminal_gets_the_preview_and_the_document_is_an_artifact(cli, fake_model):
    path = cli.write_config(config(fake_model.base_url))
    script(fake_model)
    code, shown = on_pty(cli, ["--config", path.name, "--no-display", "Draw a fox"], "xterm-kitty")
    assert code == 0, shown[-3000:]
    lines = {line.split(" (")[0].removeprefix("artifact: "): line for line in artifact_lines(shown)}
    assert sorted(lines) == ["agent1/art/fox.png", "agent1/report.pdf"]
    fox, report_line = lines["agent1/art/fox.png"], lines["agent1/report.pdf"]
    assert fox.startswith(f"artifact: agent1/art/fox.png ({len(PICTURE) / 1024:.1f} KB, image/png)")
    assert ", application/pdf) -> " in report_line
    # The picture's preview comes right after its line, and carries the very PNG.
    after = shown.split(fox + "\n", 1)[1]
    assert after.startswith("\x1b_Ga=T,f=100,")
    assert base64.b64decode("".join(p for _, p in KITTY.findall(shown))) == PICTURE
    assert not shown.split(report_line + "\n", 1)[1].startswith("\x1b")  # a PDF: no preview
    # The document was copied into the log folder, and it is a real PDF.
    report = Path(report_line.split(" -> ", 1)[1])
    pypdf = pytest.importorskip("pypdf")
    extracted = pypdf.PdfReader(io.BytesIO(report.read_bytes())).pages[0].extract_text()
    assert "Fox report" in extracted and "- The fox is red." in extracted
    fake_model.assert_complete()


def test_no_preview_on_a_plain_terminal_a_pipe_or_with_json(cli, fake_model):
    path = cli.write_config(config(fake_model.base_url))
    args = ["--config", path.name, "--no-display", "Draw a fox"]

    script(fake_model)
    code, shown = on_pty(cli, args, "xterm-256color")
    assert code == 0, shown[-3000:]
    assert len(artifact_lines(shown)) == 2
    assert "\x1b_G" not in shown and "\x1b]1337" not in shown

    script(fake_model)
    piped = cli.run(*args, env={**cli.env, "TERM": "xterm-kitty"})
    assert piped.code == 0, piped.stderr
    assert len(artifact_lines(piped.stderr)) == 2
    assert "\x1b_G" not in piped.stderr + piped.stdout

    script(fake_model)
    code, shown = on_pty(cli, ["--output", "json", *args], "xterm-kitty")
    assert code == 0, shown[-3000:]
    assert "\x1b_G" not in shown and "\x1b]1337" not in shown
    assert '"path": "agent1/report.pdf"' in shown and '"mime": "application/pdf"' in shown
    fake_model.assert_complete()

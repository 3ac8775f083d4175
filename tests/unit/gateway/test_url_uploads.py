"""Fetching ``upload_files`` URLs (sounds, documents): a real HTTP server on loopback, and
the rules a tenant's URL meets: size, content, reachability, public addresses only."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from massgen_gateway.media_files import AUDIO_TYPES, PDF_TYPES, MediaError
from massgen_gateway.url_uploads import fetch_upload

PDF = b"%PDF-1.4\n" + b"x" * 2000 + b"\n%%EOF\n"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 100
LIMIT = 64 * 1024

PAGES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/doc.pdf": (200, {"Content-Type": "application/pdf"}, PDF),
    "/alloy.wav": (200, {"Content-Type": "audio/wav"}, WAV),
    "/page.html": (200, {"Content-Type": "application/pdf"}, b"<html>not a pdf</html>"),
    "/big.pdf": (200, {}, b"%PDF-1.4\n" + b"x" * (LIMIT + 1)),
    "/moved": (302, {"Location": "/doc.pdf"}, b""),
    "/gone": (404, {}, b"no"),
}


class _Pages(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        status, headers, body = PAGES.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.path == "/big.pdf":  # no Content-Length: the limit is checked as bytes arrive
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetch(url: str, target: Path, kinds: frozenset[str] = PDF_TYPES, private: bool = True) -> Path:
    return fetch_upload(url, target, LIMIT, kinds, allow_private=private, timeout=5.0)


def test_a_pdf_and_a_sound_are_fetched_once(site: str, tmp_path: Path):
    target = tmp_path / "uploads" / "agent1" / "0"
    assert fetch(f"{site}/doc.pdf", target).read_bytes() == PDF
    # Fetched already: the file is used as is (the server is not asked again).
    assert fetch("http://127.0.0.1:9/never", target).read_bytes() == PDF
    sound = fetch(f"{site}/alloy.wav", tmp_path / "1", AUDIO_TYPES)
    assert sound.read_bytes() == WAV


def test_redirects_are_followed(site: str, tmp_path: Path):
    assert fetch(f"{site}/moved", tmp_path / "r").read_bytes() == PDF


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/big.pdf", "more than the limit of 0.1 MB"),
        ("/page.html", "not a supported file (application/pdf), by its content"),
        ("/gone", "the server answered HTTP 404"),
    ],
)
def test_hostile_urls_are_refused_naming_the_url(site: str, tmp_path: Path, path: str, words: str):
    target = tmp_path / "x"
    with pytest.raises(MediaError) as caught:
        fetch(f"{site}{path}", target)
    assert str(caught.value).startswith(f"{site}{path}: ") and words in str(caught.value)
    assert not target.exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_declared_size_over_the_limit_is_refused_before_reading(site: str, tmp_path: Path):
    PAGES["/declared.pdf"] = (200, {}, b"%PDF-1.4\n" + b"x" * (LIMIT + 10))
    with pytest.raises(MediaError, match=r"0\.1 MB is over the limit of 0\.1 MB"):
        fetch(f"{site}/declared.pdf", tmp_path / "d")


def test_an_unreachable_host_is_refused(tmp_path: Path):
    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(MediaError, match="cannot be fetched"):
        fetch(f"http://127.0.0.1:{port}/doc.pdf", tmp_path / "u")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/doc.pdf",
        "http://localhost:{port}/doc.pdf",
        "http://10.0.0.1/doc.pdf",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:{port}/doc.pdf",
    ],
)
def test_non_public_addresses_are_refused_unless_allowed(site: str, tmp_path: Path, url: str):
    port = site.rsplit(":", 1)[1]
    with pytest.raises(MediaError, match="not a public address"):
        fetch(url.format(port=port), tmp_path / "p", private=False)


def test_a_redirect_loop_ends(site: str, tmp_path: Path):
    PAGES["/loop"] = (302, {"Location": "/loop"}, b"")
    with pytest.raises(MediaError, match="more than 3 redirects"):
        fetch(f"{site}/loop", tmp_path / "l")


def test_other_schemes_are_refused(tmp_path: Path):
    with pytest.raises(MediaError, match="only http"):
        fetch("file:///etc/passwd", tmp_path / "f")

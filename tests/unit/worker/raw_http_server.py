"""A loopback HTTP server that answers each request with scripted raw bytes, then closes.

For what the scripted fake model (``fakes.openai_server``) cannot say: reasoning
fields, an error event after the 200, a chunk carrying both ``finish_reason`` and
``usage``, a body cut off mid-event or mid-chunk (a dropped connection). Like the fake
model it fails from both ends: ``assert_complete()`` fails on unused replies and on
requests beyond the script.

    server = RawHTTPServer().start()
    server.script(sse_response(chunk({"content": "hi"}), chunk({}, "stop")))
    # backend: {type: chatcompletion, model: m, base_url: server.base_url}
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

__all__ = [
    "CHUNKED_HEAD",
    "CLOSE_HEAD",
    "RawHTTPServer",
    "chunk",
    "chunked",
    "events",
    "sse_response",
    "usage_chunk",
]

CLOSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
"""Headers of a close-delimited event stream (the body ends when the connection does)."""
CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
"""Headers of a chunked event stream (how uvicorn-based servers send it)."""


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with ``delta`` (and ``extra`` top-level fields)."""
    return {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        **extra,
    }


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    """The final usage chunk of ``stream_options.include_usage`` (no choices)."""
    return {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def events(*payloads: dict[str, Any], done: bool = True) -> bytes:
    """Server-sent events: one ``data:`` event per payload, then ``[DONE]``."""
    body = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
    return body + (b"data: [DONE]\n\n" if done else b"")


def chunked(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


def sse_response(*payloads: dict[str, Any], done: bool = True) -> bytes:
    """A complete close-delimited event stream of ``payloads``."""
    return CLOSE_HEAD + events(*payloads, done=done)


class RawHTTPServer:
    """Threaded loopback server; each request gets the next scripted bytes, then EOF."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        """JSON bodies of the requests, in order."""
        self.errors: list[str] = []
        self._script: list[bytes] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"

    def start(self) -> RawHTTPServer:
        threading.Thread(target=self._accept, name="raw-http", daemon=True).start()
        return self

    def stop(self) -> None:
        self._sock.close()

    def script(self, *responses: bytes) -> None:
        with self._lock:
            self._script.extend(responses)

    def assert_complete(self) -> None:
        problems = list(self.errors)
        if self._script:
            problems.append(f"{len(self._script)} scripted response(s) never requested")
        if problems:
            raise AssertionError("raw server: " + "; ".join(problems))

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = reader.read(length)
            with self._lock:
                self.requests.append(json.loads(body or b"{}"))
                response = self._script.pop(0) if self._script else None
                if response is None:
                    self.errors.append(f"unexpected request {len(self.requests)}")
            if response is None:
                response = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
            try:
                conn.sendall(response)
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

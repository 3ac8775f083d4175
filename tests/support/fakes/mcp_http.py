"""The project's MCP test server (``mcp_tool_server.py``) over streamable-http, as a
context manager yielding its URL: for tests whose configs name an MCP server by URL."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["TOOL_SERVER", "serve_mcp_http"]

TOOL_SERVER = Path(__file__).with_name("mcp_tool_server.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_mcp_http(within: float = 30.0) -> Iterator[str]:
    """Start the server on a free port; yield ``http://127.0.0.1:<port>/mcp`` once it
    accepts connections; stop it after."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(TOOL_SERVER), "http", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + within
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the MCP test server over HTTP did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

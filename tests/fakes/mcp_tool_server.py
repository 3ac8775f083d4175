"""A real MCP server for gateway tests (python -m / script), over stdio or streamable-http.

Tools: ``echo(text)``, ``read_path(path)`` (returns a file's text: shows which path the
gateway forwarded), ``write_note(path, text)``, ``hang(seconds)`` (a hung server) and
``crash()`` (the process exits at once: a crashing server).

    python tests/fakes/mcp_tool_server.py stdio
    python tests/fakes/mcp_tool_server.py http PORT
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("test-tools")


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return f"echo: {text}"


@server.tool()
def read_path(path: str) -> str:
    """Return the text of the file at path."""
    return Path(path).read_text(encoding="utf-8")


@server.tool()
def write_note(path: str, text: str) -> str:
    """Write text to the file at path."""
    Path(path).write_text(text, encoding="utf-8")
    return f"wrote {path}"


@server.tool()
def hang(seconds: float = 3600) -> str:
    """Sleep (blocks the server)."""
    time.sleep(seconds)
    return "woke up"


@server.tool()
def crash() -> str:
    """Exit the process at once."""
    os._exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))

"""A real MCP server for gateway tests (python -m / script), over stdio or streamable-http.

Tools: ``echo(text)``, ``read_path(path)`` (returns a file's text: shows which path the
gateway forwarded), ``write_note(path, text)``, ``hang(seconds)`` (a hung server),
``probe()`` (what a hostile server can reach) and ``crash()`` (the process exits at
once: a crashing server).

    python tests/support/fakes/mcp_tool_server.py stdio
    python tests/support/fakes/mcp_tool_server.py http PORT
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
def probe() -> str:
    """What this server can reach (a hostile server's view; for the sandbox tests).

    Reads the files listed in $PROBE_PATHS (":"-separated), its parent's environment,
    tries to connect to $PROBE_CONNECT (host:port) and to write $PROBE_WRITE.
    """
    import json
    import socket

    found: dict = {"environ": sorted(os.environ), "read": {}, "parent_environ": None}
    for path in filter(None, os.environ.get("PROBE_PATHS", "").split(":")):
        try:
            found["read"][path] = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            found["read"][path] = f"ERROR {error.strerror}"
    try:
        found["parent_environ"] = (
            Path(f"/proc/{os.getppid()}/environ").read_bytes().decode(errors="replace")
        )
    except OSError as error:
        found["parent_environ"] = f"ERROR {error.strerror}"
    if target := os.environ.get("PROBE_CONNECT"):
        host, _, port = target.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            found["connect"] = "connected"
        except OSError as error:
            found["connect"] = f"ERROR {error.strerror or error}"
    if target := os.environ.get("PROBE_WRITE"):
        try:
            Path(target).write_text("escaped", encoding="utf-8")
            found["write"] = "written"
        except OSError as error:
            found["write"] = f"ERROR {error.strerror}"
    found["cwd"] = os.getcwd()
    found["uid"] = os.getuid()
    return json.dumps(found)


@server.tool()
def crash() -> str:
    """Exit the process at once."""
    os._exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))

"""Shared deployments: stdio MCP servers only from the operator's catalog, each run in a
bubblewrap sandbox that sees neither the gateway's credentials nor other runs' files.

A real gateway service on a real nats-server starts tests/support/fakes/mcp_tool_server.py as a
catalog entry; its ``probe`` tool reports what a hostile server could reach.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import nats
import pytest
import yaml
from gateway_helpers import TOOL_SERVER, GatewayClient, agent, stdio_tools
from massgen_gateway.sandbox import sandbox_available
from massgen_gateway.service import GatewayService
from massgen_gateway.settings import GatewaySettings
from massgen_kit.jetstream import StreamSettings, ensure_runs_bucket

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sandbox_available(), reason="bubblewrap (bwrap) is not installed"),
]

SENTINEL = "MASSGEN_TEST_GATEWAY_SECRET"
ESCAPE = Path("/usr/local") / f"massgen-escape-{os.getpid()}.txt"
"""Outside every folder the sandbox may write (its /var/tmp is private, so not there)."""


@pytest.fixture
async def shared_gateway(nats_url, tmp_path, monkeypatch):
    """A gateway as a shared deployment runs it: catalog + sandbox; a secret in its env."""
    monkeypatch.setenv(SENTINEL, "hunter2")
    runs = tmp_path / "runs"
    other = runs / "other-run" / "ws"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("another tenant's file")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"servers": {"probe": {
        "command": sys.executable, "args": [str(TOOL_SERVER), "stdio"],
        "env": {"PROBE_PATHS": f"{other / 'secret.txt'}:/proc/1/environ:/etc/shadow",
                "PROBE_CONNECT": f"127.0.0.1:{listener.getsockname()[1]}",
                "PROBE_WRITE": str(ESCAPE)},
    }}}))  # fmt: skip
    (tmp_path / "home").mkdir()
    settings = GatewaySettings(
        nats_url=nats_url, workspace_root=str(runs), home=str(tmp_path / "home"),
        memory_streams=True, mcp_catalog=str(catalog), sandbox="bwrap",
    )  # fmt: skip
    service = GatewayService(settings)
    await service.start()
    nc = await nats.connect(nats_url)
    kv = await ensure_runs_bucket(nc.jetstream(), StreamSettings(memory=True))
    try:
        yield GatewayClient(nc, kv), tmp_path, other
    finally:
        await nc.drain()
        await service.stop()
        listener.close()


async def test_a_catalog_server_in_the_sandbox_reaches_nothing_of_the_gateway(shared_gateway):
    client, tmp_path, other = shared_gateway
    await client.put_run("s1", {"agents": [agent("a1", {"name": "probe", "type": "stdio"},
                                                 cwd="ws")]})  # fmt: skip
    listing = await client.list("s1")
    assert "mcp__probe__probe" in [t["function"]["name"] for t in listing.tools], listing
    result = await client.call("s1", "mcp__probe__probe", {})
    assert not result.is_error, result.content
    seen = json.loads(result.content)
    assert SENTINEL not in seen["environ"] and "NATS_URL" not in str(seen["environ"])
    assert "hunter2" not in json.dumps(seen)
    assert seen["read"][str(other / "secret.txt")].startswith("ERROR")  # another run's file
    # Blank or unreadable, also for a gateway running as root (the sandbox user is root then).
    shadow = seen["read"]["/etc/shadow"]
    assert shadow == "" or shadow.startswith("ERROR"), shadow
    assert seen["parent_environ"] is None or "hunter2" not in seen["parent_environ"]
    assert seen["connect"].startswith("ERROR")  # no network without the catalog's leave
    assert seen["write"].startswith("ERROR") and not ESCAPE.exists()
    assert seen["uid"] == 65534
    assert seen["cwd"].endswith("/s1/ws") or "/s1/" in seen["cwd"]


async def test_servers_outside_the_catalog_are_refused_by_name(shared_gateway):
    client, tmp_path, _ = shared_gateway
    own = stdio_tools("tools")  # a command of the run's own choosing
    twisted = {"name": "probe", "type": "stdio", "command": "/bin/sh", "args": ["-c", "id"]}
    await client.put_run("s2", {"agents": [agent("a1", own, twisted)]})
    listing = await client.list("s2")
    assert listing.tools == [] or all("probe" not in t["function"]["name"] for t in listing.tools)
    text = " ".join(listing.errors)
    assert "'tools' is not in this deployment's catalog (approved: probe)" in text
    assert "the command comes from the catalog" in text

"""Helpers of the gateway tests: config entries of real MCP servers, a worker-like client."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from massgen_proto import subjects
from massgen_proto.config import parse_config
from massgen_proto.tools import (
    GatewayReplyAdapter,
    ToolCallRequest,
    ToolListRequest,
)

TESTS = Path(__file__).resolve().parents[2]
FS_SERVER = TESTS / "node_modules" / ".bin" / "mcp-server-filesystem"
TOOL_SERVER = TESTS / "fakes" / "mcp_tool_server.py"


def fs_server(*allowed: Path | str) -> dict[str, Any]:
    """Config entry of the npm filesystem server over stdio (skips when not installed)."""
    if not FS_SERVER.exists():
        pytest.skip("npm filesystem MCP server missing: run `npm ci --prefix tests`")
    return {"name": "filesystem", "type": "stdio", "command": str(FS_SERVER),
            "args": [str(a) for a in allowed]}  # fmt: skip


def stdio_tools(name: str = "tools", **extra: Any) -> dict[str, Any]:
    """Config entry of tests/fakes/mcp_tool_server.py over stdio."""
    return {"name": name, "type": "stdio", "command": sys.executable,
            "args": [str(TOOL_SERVER), "stdio"], **extra}  # fmt: skip


def agent(agent_id: str, *servers: dict[str, Any], **backend: Any) -> dict[str, Any]:
    return {
        "id": agent_id,
        "backend": {"type": "chatcompletion", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                    "mcp_servers": list(servers), **backend},
    }  # fmt: skip


class GatewayClient:
    """Puts runs into the runs bucket and talks to the gateway like a worker does."""

    def __init__(self, nc: Any, kv: Any) -> None:
        self.nc = nc
        self.kv = kv

    async def put_run(self, run_id: str, config: dict[str, Any], winner: str | None = None) -> None:
        parsed = parse_config(config)
        state = {"run_id": run_id, "config": parsed.model_dump(mode="json"), "winner": winner}
        await self.kv.put(run_id, json.dumps(state).encode())

    async def list(self, run_id: str, agent_id: str = "a1", label: str = "agent1",
                   phase: str = "coordinate") -> Any:  # fmt: skip
        ask = ToolListRequest(run_id=run_id, agent_id=agent_id, label=label, phase=phase)
        reply = await self.nc.request(
            subjects.GATEWAY_TOOLS_LIST, ask.model_dump_json().encode(), timeout=60
        )
        return GatewayReplyAdapter.validate_json(reply.data)

    async def call(self, run_id: str, name: str, arguments: Any, agent_id: str = "a1",
                   label: str = "agent1", phase: str = "coordinate") -> Any:  # fmt: skip
        ask = ToolCallRequest(run_id=run_id, agent_id=agent_id, label=label, phase=phase,
                              turn_id="t1", name=name, arguments=arguments)  # fmt: skip
        reply = await self.nc.request(
            subjects.GATEWAY_TOOLS_CALL, ask.model_dump_json().encode(), timeout=60
        )
        return GatewayReplyAdapter.validate_json(reply.data)

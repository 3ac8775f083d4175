"""Helpers of the gateway tests: config entries of real MCP servers, a worker-like client."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest
from massgen_kit.keepalive import request_with_keepalive
from massgen_proto import subjects
from massgen_proto.config import parse_config
from massgen_proto.ids import label_for, turn_id_for, turn_token
from massgen_proto.tools import (
    GatewayReplyAdapter,
    ToolCallRequest,
    ToolListRequest,
)

TESTS = Path(__file__).resolve().parents[2]
FS_SERVER = TESTS / "node_modules" / ".bin" / "mcp-server-filesystem"
TOOL_SERVER = TESTS / "support" / "fakes" / "mcp_tool_server.py"


def fs_server(*allowed: Path | str) -> dict[str, Any]:
    """Config entry of the npm filesystem server over stdio (skips when not installed)."""
    if not FS_SERVER.exists():
        pytest.skip("npm filesystem MCP server missing: run `npm ci --prefix tests`")
    return {"name": "filesystem", "type": "stdio", "command": str(FS_SERVER),
            "args": [str(a) for a in allowed]}  # fmt: skip


def stdio_tools(name: str = "tools", **extra: Any) -> dict[str, Any]:
    """Config entry of tests/support/fakes/mcp_tool_server.py over stdio."""
    return {"name": name, "type": "stdio", "command": sys.executable,
            "args": [str(TOOL_SERVER), "stdio"], **extra}  # fmt: skip


def agent(agent_id: str, *servers: dict[str, Any], **backend: Any) -> dict[str, Any]:
    return {
        "id": agent_id,
        "backend": {"type": "chatcompletion", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                    "mcp_servers": list(servers), **backend},
    }  # fmt: skip


class GatewayClient:
    """Puts runs into the runs bucket and talks to the gateway like a worker does.

    A run is stored as the orchestrator stores it, as far as the gateway reads it:
    config, status, the run's secret, and each agent's current turn. ``list`` / ``call``
    act as the worker of the agent's current turn (carrying its token), first giving
    the agent a new turn when the one it has is of another phase; pass ``token`` /
    ``turn_id`` to send something else.
    """

    def __init__(self, nc: Any, kv: Any) -> None:
        self.nc = nc
        self.kv = kv
        self.states: dict[str, dict[str, Any]] = {}

    async def put_run(self, run_id: str, config: dict[str, Any], winner: str | None = None) -> None:
        parsed = parse_config(config)
        agents = []
        for index, entry in enumerate(parsed.agents):
            label = label_for(index)
            agents.append({"agent_id": entry.id, "label": label, "turns": 1,
                           "turn": {"turn_id": turn_id_for(run_id, label, 1), "number": 1,
                                    "phase": "coordinate"}})  # fmt: skip
        state = {"run_id": run_id, "config": parsed.model_dump(mode="json"), "winner_label": winner,
                 "status": "running", "secret": secrets.token_hex(16),
                 "agents": agents}  # fmt: skip
        await self.write(state)

    async def write(self, state: dict[str, Any]) -> None:
        self.states[state["run_id"]] = state
        await self.kv.put(state["run_id"], json.dumps(state).encode())

    def agent(self, run_id: str, agent_id: str) -> dict[str, Any]:
        return next(a for a in self.states[run_id]["agents"] if a["agent_id"] == agent_id)

    def turn_id(self, run_id: str, agent_id: str = "a1") -> str:
        """The agent's current turn."""
        return self.agent(run_id, agent_id)["turn"]["turn_id"]

    def token(self, run_id: str, agent_id: str = "a1") -> str:
        """The capability of the agent's current turn, as its turn request carries it."""
        return turn_token(self.states[run_id]["secret"], self.turn_id(run_id, agent_id))

    async def new_turn(self, run_id: str, agent_id: str = "a1", phase: str = "coordinate") -> str:
        """Give the agent its next turn (the orchestrator's restart); returns its id."""
        agent = self.agent(run_id, agent_id)
        agent["turns"] += 1
        turn_id = turn_id_for(run_id, agent["label"], agent["turns"])
        agent["turn"] = {"turn_id": turn_id, "number": agent["turns"], "phase": phase}
        await self.write(self.states[run_id])
        return turn_id

    async def set_status(self, run_id: str, status: str) -> None:
        self.states[run_id]["status"] = status
        await self.write(self.states[run_id])

    async def _caller(self, run_id: str, agent_id: str, phase: str, token: str | None,
                      turn_id: str | None) -> tuple[str, str]:  # fmt: skip
        if run_id in self.states and token is None and turn_id is None:
            agent = self.agent(run_id, agent_id)
            if agent["turn"]["phase"] != phase:
                await self.new_turn(run_id, agent_id, phase)
        known = run_id in self.states and any(
            a["agent_id"] == agent_id for a in self.states[run_id]["agents"]
        )
        if turn_id is None:
            turn_id = self.turn_id(run_id, agent_id) if known else "t1"
        if token is None:
            token = self.token(run_id, agent_id) if known else ""
        return turn_id, token

    async def list(self, run_id: str, agent_id: str = "a1", label: str = "agent1",
                   phase: str = "coordinate", *, token: str | None = None,
                   turn_id: str | None = None) -> Any:  # fmt: skip
        turn_id, token = await self._caller(run_id, agent_id, phase, token, turn_id)
        ask = ToolListRequest(run_id=run_id, agent_id=agent_id, label=label, phase=phase,
                              turn_id=turn_id, token=token)  # fmt: skip
        reply = await request_with_keepalive(
            self.nc, subjects.GATEWAY_TOOLS_LIST, ask.model_dump_json().encode(), timeout=60
        )
        return GatewayReplyAdapter.validate_json(reply)

    async def call(self, run_id: str, name: str, arguments: Any, agent_id: str = "a1",
                   label: str = "agent1", phase: str = "coordinate", *,
                   token: str | None = None, turn_id: str | None = None) -> Any:  # fmt: skip
        turn_id, token = await self._caller(run_id, agent_id, phase, token, turn_id)
        ask = ToolCallRequest(run_id=run_id, agent_id=agent_id, label=label, phase=phase,
                              turn_id=turn_id, token=token, name=name,
                              arguments=arguments)  # fmt: skip
        reply = await request_with_keepalive(
            self.nc, subjects.GATEWAY_TOOLS_CALL, ask.model_dump_json().encode(), timeout=60
        )
        return GatewayReplyAdapter.validate_json(reply)

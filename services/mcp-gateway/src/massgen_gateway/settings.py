"""Gateway settings, validated at start-up; ``MASSGEN_GATEWAY_*`` variables override them."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from massgen_kit.jetstream import StreamSettings
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ENV_PREFIX", "GatewaySettings"]

ENV_PREFIX = "MASSGEN_GATEWAY_"


class GatewaySettings(BaseModel):
    """How one gateway replica brokers tool calls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nats_url: str = Field(
        default_factory=lambda: os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    )
    replica: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    workspace_root: str = Field(default_factory=lambda: str(Path.cwd() / ".massgen" / "workspaces"))
    """Runs' folders: ``<workspace_root>/<run_id>/workspaces/<label>`` ..."""
    final_dir: str | None = None
    """Where the winner's final workspace is copied: ``{run_id}`` is replaced; None:
    ``<workspace_root>/<run_id>/final_workspace``."""
    home: str = Field(default_factory=lambda: os.path.expanduser("~"))
    """What ``~`` in an agent's path means."""
    call_timeout: float = Field(default=30.0, gt=0)
    """Seconds one MCP tool call may take."""
    connect_timeout: float = Field(default=30.0, gt=0)
    """Seconds an MCP server gets to start and initialize."""
    breaker_threshold: int = Field(default=3, ge=1)
    """Consecutive failures of a server (per agent) that open its circuit."""
    breaker_cooldown: float = Field(default=30.0, ge=0)
    """Seconds an open circuit refuses calls before one trial call."""
    stream_replicas: int = Field(default=1, ge=1, le=5)
    memory_streams: bool = False
    mcp_catalog: str | None = Field(default_factory=lambda: os.environ.get("MASSGEN_MCP_CATALOG"))
    """YAML file of the stdio MCP servers a shared deployment may run
    (``massgen_proto.catalog``); None: a run's config may start any command."""
    sandbox: Literal["none", "bwrap"] = "none"
    """``bwrap``: every stdio server runs in a bubblewrap sandbox (see sandbox.py)."""
    sandbox_cpu_seconds: int = Field(default=600, gt=0)
    """CPU seconds a sandboxed server may use over its life."""
    sandbox_memory_bytes: int = Field(default=2 << 30, gt=0)
    """Address space a sandboxed server may map."""

    def stream_settings(self) -> StreamSettings:
        return StreamSettings(replicas=self.stream_replicas, memory=self.memory_streams)

    def final_dir_for(self, run_id: str) -> Path:
        """The folder that receives run ``run_id``'s final workspace."""
        if self.final_dir:
            return Path(self.final_dir.replace("{run_id}", run_id))
        return Path(self.workspace_root) / run_id / "final_workspace"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> GatewaySettings:
        """Settings from ``MASSGEN_GATEWAY_<FIELD>`` variables, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

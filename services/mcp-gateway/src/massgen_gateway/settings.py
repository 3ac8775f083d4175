"""Gateway settings, validated at start-up; ``MASSGEN_GATEWAY_*`` variables override them."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from massgen_kit.jetstream import StreamSettings
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    unsandboxed_exec: bool = False
    """Let ``execute_command`` and custom tools run without bubblewrap when it is not
    installed (MassGen's ``local`` mode: patterns and limits only). Only for a gateway on
    the user's own machine; never together with ``sandbox: bwrap``."""
    exec_timeout: float = Field(default=60.0, gt=0)
    """Seconds one command or custom tool call may run (its whole process tree is
    killed then); the call's own timeout and the ``timeout`` argument can only shorten it."""
    exec_output_bytes: int = Field(default=16_000, ge=1_000)
    """Bytes of a command's stdout and stderr (each) the model reads: head and tail kept."""
    exec_cpu_seconds: int = Field(default=60, gt=0)
    """CPU seconds each process of a command may use (RLIMIT_CPU)."""
    exec_memory_bytes: int = Field(default=2 << 30, gt=0)
    """Address space each process of a command may map (RLIMIT_AS)."""
    exec_file_bytes: int = Field(default=256 << 20, gt=0)
    """Largest file a command may write (RLIMIT_FSIZE)."""
    exec_max_processes: int = Field(default=128, ge=8)
    """Processes (and threads) of one command: a pids cgroup when the gateway may create
    one, else RLIMIT_NPROC (which the kernel does not apply to a gateway running as root)."""
    exec_tmp_bytes: int = Field(default=64 << 20, gt=0)
    """Size of a command's private ``/tmp`` (a tmpfs)."""
    exec_network: bool = False
    """Let a command have the gateway's network when its agent's config asks for it
    (``command_line_docker_network_mode: bridge`` or ``host``); off, such a command is
    refused with the reason. The CLI's own stack turns it on (the user's machine); in a
    cluster the pod's egress policy still applies. Custom tools never get the network."""
    media_max_bytes: int = Field(default=50 << 20, gt=0)
    """Largest media file (upload, image shown to a model, generated file) of any agent:
    the ceiling of a config's ``media_max_file_size_mb``."""
    upload_url_private: bool = False
    """Let ``upload_files`` URLs the gateway fetches (sounds, documents) name loopback,
    private, link-local or other non-public addresses. Off: a tenant's config cannot make
    the gateway read a service inside the cluster and hand it to a provider."""
    upload_url_timeout: float = Field(default=30.0, gt=0)
    """Seconds one ``upload_files`` URL may take to download, redirects included."""
    exec_ro_paths: list[str] = Field(default_factory=list)
    """Extra host folders commands may read (e.g. ``/opt/conda``) besides ``/usr`` and
    the granted roots."""

    @field_validator("exec_ro_paths", mode="before")
    @classmethod
    def _paths_from_text(cls, value: object) -> object:
        # From the environment: MASSGEN_GATEWAY_EXEC_RO_PATHS=/opt/conda:/opt/node
        if isinstance(value, str):
            return [p for p in value.split(os.pathsep) if p]
        return value

    @model_validator(mode="after")
    def _unsandboxed_only_locally(self) -> GatewaySettings:
        if self.unsandboxed_exec and self.sandbox == "bwrap":
            raise ValueError(
                "unsandboxed_exec is for a gateway on the user's own machine; a gateway "
                "with sandbox 'bwrap' never runs commands outside the sandbox"
            )
        return self

    def stream_settings(self) -> StreamSettings:
        return StreamSettings(replicas=self.stream_replicas, memory=self.memory_streams)

    def final_dir_for(self, run_id: str) -> Path:
        """The folder that receives run ``run_id``'s final workspace."""
        if self.final_dir:
            return Path(self.final_dir.replace("{run_id}", run_id))
        return Path(self.workspace_root) / run_id / "final_workspace"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> GatewaySettings:
        """Settings from ``MASSGEN_GATEWAY_<FIELD>`` variables, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

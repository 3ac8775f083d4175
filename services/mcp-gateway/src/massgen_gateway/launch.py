"""How the gateway starts a stdio MCP server: the deployment's catalog, then the sandbox."""

from __future__ import annotations

from pathlib import Path

from massgen_proto.catalog import McpCatalog
from massgen_proto.config import McpServerConfig

from .sandbox import sandbox_available, sandboxed
from .sessions import SessionError
from .settings import GatewaySettings

__all__ = ["launchable"]


def launchable(
    server: McpServerConfig, settings: GatewaySettings, workspace: Path
) -> McpServerConfig:
    """The server as the gateway starts it: a stdio command from the deployment's
    catalog (when it has one), wrapped in the sandbox (when configured).

    Raises:
        SessionError: the catalog refuses it, or it has no command to run.
    """
    if server.type != "stdio":
        return server
    entry = McpCatalog.load(settings.mcp_catalog).resolve(server)
    if isinstance(entry, str):
        raise SessionError(entry)
    if entry is not None:
        command, args = entry.command, list(entry.args)
        env, network = dict(entry.env), entry.network
    elif server.command:
        command, args, env, network = server.command, list(server.args), dict(server.env), True
    else:
        raise SessionError(
            "a stdio MCP server needs 'command' (or, in a deployment with an MCP "
            "catalog, the name of a catalog entry)"
        )
    if settings.sandbox == "bwrap":
        if not sandbox_available():
            raise SessionError("the gateway's sandbox (bubblewrap) is not installed")
        command, args = sandboxed(
            command, args, workspace=workspace.resolve(),
            hidden=[Path(settings.workspace_root).resolve()], env=env, network=network,
            cpu_seconds=settings.sandbox_cpu_seconds,
            memory_bytes=settings.sandbox_memory_bytes,
        )  # fmt: skip
        env = {}
    cwd = None if entry is not None else server.cwd  # a catalog server runs in the workspace
    return server.model_copy(update={"command": command, "args": args, "env": env, "cwd": cwd})

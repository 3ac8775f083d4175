"""The operator's catalog of stdio MCP servers: the only commands a shared deployment runs.

A run config may declare ``mcp_servers`` of ``type: stdio`` with any ``command``; on one
machine that is the user's own business, but in a deployment serving many tenants it
would let any tenant run code in the gateway. When a catalog is configured
(``MASSGEN_MCP_CATALOG``: a YAML file mounted into the gateway and the API), a stdio
server may only *name* a catalog entry; the command, arguments and environment come
from the catalog, and anything else is refused with a message naming the server.

    servers:
      filesystem:
        command: npx
        args: ["-y", "@modelcontextprotocol/server-filesystem", "."]
        env: {NODE_OPTIONS: "--max-old-space-size=256"}
        network: false        # may it open network connections (sandbox egress)?
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .config import McpServerConfig

__all__ = ["ENV_VAR", "CatalogEntry", "McpCatalog"]

ENV_VAR = "MASSGEN_MCP_CATALOG"


@dataclass(frozen=True)
class CatalogEntry:
    """One approved stdio server."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    network: bool = False


@dataclass(frozen=True)
class McpCatalog:
    """Approved stdio servers by name; ``enabled`` False: no catalog (anything runs)."""

    entries: Mapping[str, CatalogEntry] = field(default_factory=dict)
    enabled: bool = True

    @classmethod
    def parse(cls, data: Any, source: str = "catalog") -> McpCatalog:
        """Build from the YAML document's data.

        Raises:
            ValueError: a malformed document, naming ``source`` and the entry.
        """
        servers = (data or {}).get("servers") if isinstance(data, dict) else None
        if not isinstance(servers, dict):
            raise ValueError(f"{source}: expected a mapping 'servers: {{name: {{command: ...}}}}'")
        entries = {}
        for name, spec in servers.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("command"), str):
                raise ValueError(f"{source}: servers.{name} needs a 'command' string")
            args = spec.get("args") or []
            env = spec.get("env") or {}
            if not isinstance(args, list) or not isinstance(env, dict):
                raise ValueError(f"{source}: servers.{name}: 'args' is a list, 'env' a mapping")
            entries[str(name)] = CatalogEntry(
                name=str(name),
                command=spec["command"],
                args=tuple(str(a) for a in args),
                env={str(k): str(v) for k, v in env.items()},
                network=bool(spec.get("network", False)),
            )
        return cls(entries=entries)

    @classmethod
    def load(cls, path: str | None) -> McpCatalog:
        """The catalog in the YAML file at ``path``; None: no catalog."""
        if path is None:
            return cls(enabled=False)
        return _load(str(Path(path).resolve()))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> McpCatalog:
        env = os.environ if env is None else env
        return cls.load(env.get(ENV_VAR) or None)

    def resolve(self, server: McpServerConfig) -> CatalogEntry | str | None:
        """For a stdio server: its catalog entry, or why it is refused. None: nothing to
        resolve (not stdio, or no catalog)."""
        if not self.enabled or server.type != "stdio":
            return None
        entry = self.entries.get(server.name)
        listed = ", ".join(sorted(self.entries)) or "none"
        if entry is None:
            return (
                f"stdio MCP server {server.name!r} is not in this deployment's catalog "
                f"(approved: {listed}); name an approved server or use a streamable-http one"
            )
        given = (server.command, tuple(server.args))
        if server.command is not None and given != (entry.command, entry.args):
            return (
                f"stdio MCP server {server.name!r}: the command comes from the catalog; "
                "leave out 'command' and 'args' (or give exactly the catalog's)"
            )
        if server.env:
            return f"stdio MCP server {server.name!r}: 'env' is set by the catalog, not the run"
        return entry

    def problems(self, config: Any) -> list[tuple[str, str]]:
        """``(key_path, message)`` for every stdio server of a ``RunConfig`` it refuses."""
        found = []
        for i, agent in enumerate(getattr(config, "agents", [])):
            for j, server in enumerate(agent.backend.mcp_servers):
                verdict = self.resolve(server)
                if isinstance(verdict, str):
                    found.append((f"agents[{i}].backend.mcp_servers[{j}]", verdict))
        return found


@lru_cache(maxsize=4)
def _load(path: str) -> McpCatalog:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{ENV_VAR}: cannot read {path}: {error.strerror or error}") from None
    return McpCatalog.parse(data, path)

"""Which keys of a run config name folders and files on the machine that runs the tools.

A config's paths are read by the mcp-gateway: agents' workspaces (``cwd``), context
paths, uploads, custom tool files, a virtualenv, where snapshots go, the skills folder.
For one user on their own machine those are their own files. A config a tenant sends to
a shared API must not name any: ``cwd: /`` or a context path ``/var/run/secrets`` would
hand the gateway's own files (its NATS credentials, every other tenant's workspaces) to
the tenant's agents. ``host_path_problems`` lists every such key of a config, for the
API to refuse (422) unless its operator allows host paths.

Allowed to a tenant: a ``cwd`` or storage folder given as a plain relative path (it
lands under the run's own folder), uploads by URL (fetched by the gateway under its URL
rules), custom tools from the built-in library, the skills folder the operator installed
(a relative path without ``..``).
"""

from __future__ import annotations

import posixpath

from .config import RunConfig
from .config.tool_library import is_library_path

__all__ = ["ALLOW_ENV", "host_path_problems"]

ALLOW_ENV = "MASSGEN_API_ALLOW_HOST_PATHS"
"""The API's setting that lets tenants' configs name host paths (off unless single-user)."""


def _escapes(path: str) -> bool:
    """An absolute path, a home path, or a relative one that climbs out with ``..``."""
    if path.startswith(("/", "~", "\\")) or (len(path) > 1 and path[1] == ":"):
        return True
    normal = posixpath.normpath(path.replace("\\", "/"))
    return normal == ".." or normal.startswith("../")


def _why(what: str) -> str:
    return (
        f"{what} on the server are not allowed in a config sent to this API (the gateway's "
        f"files and other tenants' runs live there); give a relative path without '..', or "
        f"ask its operator to allow host paths ({ALLOW_ENV})"
    )


def host_path_problems(config: RunConfig) -> list[tuple[str, str]]:
    """``(key path, why)`` for every key of ``config`` naming a path on the server."""
    found: list[tuple[str, str]] = []
    for i, agent in enumerate(config.agents):
        b, at = agent.backend, f"agents[{i}].backend"
        if b.cwd and _escapes(b.cwd):
            found.append((f"{at}.cwd", _why("workspaces outside the run's folder")))
        if b.command_execution_venv_path:
            found.append((f"{at}.command_execution_venv_path", _why("virtualenvs")))
        for j, tool in enumerate(b.custom_tools):
            if tool.path is not None and not is_library_path(tool.path):
                found.append((f"{at}.custom_tools[{j}].path", _why("custom tool files")))
        for j, entry in enumerate(b.upload_files):
            if not entry.is_url:
                found.append((f"{at}.upload_files[{j}].{entry.key}", _why("uploaded files")))
    o = config.orchestrator
    for j, _ in enumerate(o.context_paths):
        found.append((f"orchestrator.context_paths[{j}]", _why("context paths")))
    for key in ("snapshot_storage", "agent_temporary_workspace"):
        value = getattr(o, key)
        if value and _escapes(value):
            found.append((f"orchestrator.{key}", _why("folders outside the gateway's own")))
    if o.coordination.use_skills and _escapes(o.coordination.skills_directory):
        found.append(
            ("orchestrator.coordination.skills_directory", _why("skills folders elsewhere"))
        )
    return found

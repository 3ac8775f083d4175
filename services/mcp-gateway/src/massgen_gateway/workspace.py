"""Where a run's folders live, and the snapshots of agents' workspaces.

Layout (``root`` is ``GatewaySettings.workspace_root``)::

    <root>/<run_id>/workspaces/<label>/      an agent's workspace (or its ``backend.cwd``)
    <reference>/<label>/                       latest snapshot of each agent, by label
    <root>/<run_id>/.staging/                  snapshots being written (never readable)
    <root>/<run_id>/logs/                      stderr of the run's stdio MCP servers

``<reference>`` is ``<orchestrator.agent_temporary_workspace>/<run_id>``, else
``<orchestrator.snapshot_storage>/<run_id>``, else ``<root>/<run_id>/reference``.
Folder names are labels only: real agent ids never appear in a path an agent sees.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from massgen_proto.config import RunConfig

__all__ = ["RunLayout", "copy_tree", "layout_for", "snapshot"]


@dataclass(frozen=True, slots=True)
class RunLayout:
    """The folders of one run."""

    run_dir: Path
    reference: Path
    staging: Path
    logs: Path

    def workspace(self, label: str, cwd: str | None) -> Path:
        """An agent's workspace: its ``backend.cwd`` (relative ones under the run's
        folder, so two runs never share one) or ``workspaces/<label>``."""
        if cwd:
            path = Path(os.path.expanduser(cwd))
            return path if path.is_absolute() else self.run_dir / path
        return self.run_dir / "workspaces" / label


def layout_for(root: Path, run_id: str, config: RunConfig) -> RunLayout:
    """The layout of run ``run_id`` (nothing is created)."""
    run_dir = Path(root).absolute() / run_id
    base = config.orchestrator.agent_temporary_workspace or config.orchestrator.snapshot_storage
    reference = (
        Path(os.path.expanduser(base)).absolute() / run_id if base else run_dir / "reference"
    )
    return RunLayout(run_dir, reference, run_dir / ".staging", run_dir / "logs")


def copy_tree(source: Path, target: Path) -> None:
    """Copy a folder, keeping symlinks as links (never following them out of the tree)."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)


def snapshot(workspace: Path, layout: RunLayout, label: str) -> Path:
    """Replace ``<reference>/<label>`` with a copy of ``workspace``; returns its path.

    Written under ``.staging`` first and renamed into place, so a reader sees the old
    snapshot or the new one, never half of one.
    """
    target = layout.reference / label
    layout.staging.mkdir(parents=True, exist_ok=True)
    layout.reference.mkdir(parents=True, exist_ok=True)
    staged = layout.staging / f"{label}-{uuid.uuid4().hex}"
    if workspace.is_dir():
        copy_tree(workspace, staged)
    else:
        staged.mkdir()
    old = None
    if target.exists():
        old = layout.staging / f"old-{label}-{uuid.uuid4().hex}"
        os.replace(target, old)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target

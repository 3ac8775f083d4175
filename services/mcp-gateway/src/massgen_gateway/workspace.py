"""Where a run's folders live, and the snapshots of agents' workspaces.

Layout (``root`` is ``GatewaySettings.workspace_root``)::

    <root>/<run_id>/workspaces/<label>/      an agent's workspace (or its ``backend.cwd``)
    <reference>/<label>/                       latest snapshot of each agent, by label
    <root>/<run_id>/final_workspace/           the winner's workspace at the run's end
    <root>/<run_id>/.staging/                  snapshots being written (never readable)
    <root>/<run_id>/logs/                      stderr of the run's stdio MCP servers

``<reference>`` is ``<orchestrator.agent_temporary_workspace>/<run_id>``, else
``<orchestrator.snapshot_storage>/<run_id>``, else ``<root>/<run_id>/reference``.
Folder names are labels only: real agent ids never appear in a path an agent sees.

A run that continues a session (``RunRecord.previous_run_id``) starts each agent's
workspace as a copy of the previous run's ``final_workspace``, with a link
``previous_turn`` to that folder, which stays read-only (``permissions``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from massgen_proto.config import RunConfig

__all__ = [
    "FINAL",
    "PREVIOUS_LINK",
    "RunLayout",
    "copy_tree",
    "final_workspace",
    "layout_for",
    "save_final",
    "seed_workspace",
    "snapshot",
]

FINAL = "final_workspace"
"""Folder of a run's final workspace, under the run's folder."""
PREVIOUS_LINK = "previous_turn"
"""Link in a seeded workspace to the previous turn's final workspace (read-only)."""


@dataclass(frozen=True, slots=True)
class RunLayout:
    """The folders of one run."""

    run_dir: Path
    reference: Path
    staging: Path
    logs: Path

    @property
    def final(self) -> Path:
        """The winner's workspace as the run ended (the next turn of a session starts
        from it)."""
        return self.run_dir / FINAL

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


def final_workspace(root: Path, run_id: str) -> Path:
    """Where run ``run_id``'s final workspace is kept (``RunLayout.final``)."""
    return Path(root).absolute() / run_id / FINAL


def copy_tree(source: Path, target: Path) -> None:
    """Copy a folder, keeping symlinks as links (never following them out of the tree).

    The ``previous_turn`` link at the top is left out: it belongs to the run that
    seeded the workspace, not to the agent's work.
    """

    top = os.fspath(source)

    def ignore(folder: str, names: list[str]) -> set[str]:
        if folder == top and PREVIOUS_LINK in names:
            if os.path.islink(os.path.join(folder, PREVIOUS_LINK)):
                return {PREVIOUS_LINK}
        return set()

    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=ignore)


def _place(staged: Path, target: Path, staging: Path) -> None:
    """Rename ``staged`` to ``target``, replacing what is there: a reader sees the old
    folder or the new one, never half of one."""
    old = None
    if target.exists():
        old = staging / f"old-{target.name}-{uuid.uuid4().hex}"
        os.replace(target, old)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def snapshot(workspace: Path, layout: RunLayout, label: str) -> Path:
    """Replace ``<reference>/<label>`` with a copy of ``workspace``; returns its path.

    Written under ``.staging`` first and renamed into place.
    """
    target = layout.reference / label
    layout.staging.mkdir(parents=True, exist_ok=True)
    layout.reference.mkdir(parents=True, exist_ok=True)
    staged = layout.staging / f"{label}-{uuid.uuid4().hex}"
    if workspace.is_dir():
        copy_tree(workspace, staged)
    else:
        staged.mkdir()
    _place(staged, target, layout.staging)
    return target


def save_final(workspace: Path, layout: RunLayout) -> Path:
    """Replace the run's ``final_workspace`` with a copy of ``workspace`` (the winner's);
    returns its path. Staged and renamed into place, so the next turn of a session
    never starts from half of it."""
    layout.staging.mkdir(parents=True, exist_ok=True)
    staged = layout.staging / f"{FINAL}-{uuid.uuid4().hex}"
    copy_tree(workspace, staged)
    _place(staged, layout.final, layout.staging)
    return layout.final


def seed_workspace(workspace: Path, previous: Path) -> bool:
    """Start a new workspace as a copy of ``previous`` plus a ``previous_turn`` link to it.

    Only a workspace that does not exist yet is seeded: one that exists was seeded
    already (by this call on another replica, or an earlier call), or is a folder of
    the user's own (an absolute ``backend.cwd``), which is left as it is.

    Returns:
        True when this call seeded the workspace.
    """
    if workspace.exists():
        return False
    workspace.parent.mkdir(parents=True, exist_ok=True)
    staged = workspace.parent / f".{workspace.name}.seed-{uuid.uuid4().hex}"
    try:
        copy_tree(previous, staged)
        link = staged / PREVIOUS_LINK
        if not os.path.lexists(link):
            os.symlink(os.path.realpath(previous), link, target_is_directory=True)
        try:
            # Replaces an empty folder that another replica created meanwhile; fails
            # (and the copy is dropped) when that one was seeded already.
            os.rename(staged, workspace)
        except OSError:
            return False
        return True
    finally:
        if staged.exists() or staged.is_symlink():
            shutil.rmtree(staged, ignore_errors=True)

"""A session's next turn: the previous turn's final workspace as a read-only root, each
agent's workspace seeded with a copy of it, and final copies that leave the link out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from massgen_gateway.permissions import build_scope
from massgen_gateway.workspace import (
    PREVIOUS_LINK,
    copy_tree,
    final_workspace,
    layout_for,
    save_final,
    seed_workspace,
)
from massgen_proto.config import parse_config


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """Run ``r1``'s final workspace: app.py and a sub-folder."""
    final = final_workspace(tmp_path / "runs", "r1")
    (final / "pkg").mkdir(parents=True)
    (final / "app.py").write_text("print('v1')\n")
    (final / "pkg" / "mod.py").write_text("X = 1\n")
    return final


def _scope(workspace: Path, previous: Path | None, phase: str = "coordinate"):
    return build_scope(
        label="agent1", phase=phase, is_winner=True, workspace=str(workspace),
        reference=str(workspace.parent.parent / "reference"), labels=["agent1"],
        previous=str(previous) if previous else None,
    )  # fmt: skip


def test_seeding_copies_the_files_and_links_the_originals(tmp_path, previous):
    workspace = tmp_path / "runs" / "r2" / "workspaces" / "agent1"
    assert seed_workspace(workspace, previous) is True
    assert (workspace / "app.py").read_text() == "print('v1')\n"
    assert (workspace / "pkg" / "mod.py").read_text() == "X = 1\n"
    link = workspace / PREVIOUS_LINK
    assert link.is_symlink() and os.path.realpath(link) == os.path.realpath(previous)
    # The copy is the agent's own: editing it leaves the original alone.
    (workspace / "app.py").write_text("print('v2')\n")
    assert (previous / "app.py").read_text() == "print('v1')\n"
    # No staging folder is left next to the workspace.
    assert sorted(p.name for p in workspace.parent.iterdir()) == ["agent1"]


def test_an_existing_workspace_is_never_seeded_again(tmp_path, previous):
    workspace = tmp_path / "mine"
    workspace.mkdir()
    (workspace / "app.py").write_text("the agent's edit\n")
    assert seed_workspace(workspace, previous) is False
    assert (workspace / "app.py").read_text() == "the agent's edit\n"
    assert not (workspace / PREVIOUS_LINK).exists()


def test_a_file_named_previous_turn_in_the_previous_turn_keeps_its_place(tmp_path, previous):
    (previous / PREVIOUS_LINK).write_text("an agent's own file\n")
    workspace = tmp_path / "ws"
    assert seed_workspace(workspace, previous)
    assert not (workspace / PREVIOUS_LINK).is_symlink()
    assert (workspace / PREVIOUS_LINK).read_text() == "an agent's own file\n"


def test_the_previous_turn_is_read_only_and_the_copy_writable(tmp_path, previous):
    workspace = tmp_path / "runs" / "r2" / "workspaces" / "agent1"
    seed_workspace(workspace, previous)
    for phase in ("coordinate", "present"):
        scope = _scope(workspace, previous, phase)
        assert scope.check("app.py", "write").allowed
        read = scope.check(f"{PREVIOUS_LINK}/app.py", "read")
        assert read.allowed and read.root.kind == "previous"
        assert scope.check(str(previous / "pkg" / "mod.py"), "read").allowed
        for raw, access in (
            (f"{PREVIOUS_LINK}/app.py", "write"),
            (f"{PREVIOUS_LINK}/new.py", "write"),
            (str(previous / "app.py"), "delete"),
        ):
            denied = scope.check(raw, access)
            assert not denied.allowed and denied.rule == "previous_turn_read_only", raw
            assert "previous turn's files are read-only" in denied.message
            assert "(read: the previous turn's final files; edit your copy)" in denied.message


def test_without_a_previous_turn_its_folder_is_outside_every_root(tmp_path, previous):
    workspace = tmp_path / "runs" / "r2" / "workspaces" / "agent1"
    workspace.mkdir(parents=True)
    denied = _scope(workspace, None).check(str(previous / "app.py"), "read")
    assert not denied.allowed and denied.rule == "outside_roots"


def test_final_and_snapshot_copies_leave_the_link_out(tmp_path, previous):
    config = parse_config({"agents": [{"id": "a", "backend": {"type": "openai", "model": "m"}}]})
    layout = layout_for(tmp_path / "runs", "r2", config)
    workspace = layout.workspace("agent1", None)
    seed_workspace(workspace, previous)
    (workspace / "app.py").write_text("print('v2')\n")
    kept = save_final(workspace, layout)
    assert kept == final_workspace(tmp_path / "runs", "r2") == layout.final
    assert sorted(p.name for p in kept.iterdir()) == ["app.py", "pkg"]
    assert (kept / "app.py").read_text() == "print('v2')\n"
    # Saved again (a second replica, a re-delivered event): replaced, not merged.
    (workspace / "app.py").unlink()
    save_final(workspace, layout)
    assert sorted(p.name for p in layout.final.iterdir()) == ["pkg"]
    # A link deeper down is the agent's own and is kept as a link.
    os.symlink("../app.py", workspace / "pkg" / PREVIOUS_LINK)
    copy_tree(workspace, tmp_path / "copy")
    assert (tmp_path / "copy" / "pkg" / PREVIOUS_LINK).is_symlink()
    assert not (tmp_path / "copy" / PREVIOUS_LINK).exists()

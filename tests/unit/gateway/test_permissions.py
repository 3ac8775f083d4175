"""permissions.py: roots, phases, protected paths, the delete ledger, resolution, properties."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from massgen_gateway.permissions import AccessLedger, ContextRoot, build_scope


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A run's folders plus a project (context path) and an outside folder."""
    ws = tmp_path / "run" / "workspaces" / "agent1"
    ref = tmp_path / "run" / "reference"
    project = tmp_path / "project"
    outside = tmp_path / "outside"
    for folder in (
        ws,
        ref / "agent2",
        project / "src",
        project / ".git",
        project / "secrets",
        outside,
    ):
        folder.mkdir(parents=True)
    (project / "README.md").write_text("readme")
    (project / "src" / "main.py").write_text("print(1)")
    (project / ".env").write_text("KEY=1")
    (project / "secrets" / "k").write_text("k")
    (outside / "secret.txt").write_text("secret")
    single = tmp_path / "notes.txt"
    single.write_text("notes")
    (tmp_path / "notes.txt.bak").write_text("bak")
    home = tmp_path / "home"
    home.mkdir()
    return {
        "ws": ws, "ref": ref, "project": project, "outside": outside, "single": single,
        "home": home, "tmp": tmp_path,
    }  # fmt: skip


def scope(tree, phase="coordinate", winner=False, permission="write", **extra):
    return build_scope(
        label="agent1",
        phase=phase,
        is_winner=winner,
        workspace=str(tree["ws"]),
        reference=str(tree["ref"]),
        labels=["agent1", "agent2"],
        context_paths=[
            ContextRoot(str(tree["project"]), permission, ("secrets",)),
            ContextRoot(str(tree["single"]), "write"),
        ],
        home=str(tree["home"]),
        **extra,
    )


def test_workspace_is_readable_and_writable(tree):
    s = scope(tree)
    assert s.check("notes/a.txt", "write").allowed
    assert s.check("a.txt", "read").allowed
    decision = s.check("sub/../a.txt", "write")
    assert decision.allowed and decision.path == str(tree["ws"] / "a.txt")


def test_reference_is_read_only_and_by_label_only(tree):
    s = scope(tree)
    assert s.check(str(tree["ref"] / "agent2" / "x"), "read").allowed
    denied = s.check(str(tree["ref"] / "agent2" / "x"), "write")
    assert denied.rule == "reference_read_only"
    assert s.check(str(tree["ref"] / "a2"), "read").rule == "reference_unknown_label"


@pytest.mark.parametrize(
    ("phase", "winner", "permission", "rule"),
    [
        ("coordinate", True, "write", "context_read_only_while_coordinating"),
        ("coordinate", False, "write", "context_read_only_while_coordinating"),
        ("present", False, "write", "context_read_only_not_winner"),
        ("present", True, "read", "context_read_only"),
        ("present", True, "write", "allowed"),
    ],
)
def test_context_write_needs_presenting_winner_and_write(tree, phase, winner, permission, rule):
    s = scope(tree, phase, winner, permission)
    assert s.check(str(tree["project"] / "src" / "main.py"), "read").allowed
    assert s.check(str(tree["project"] / "src" / "main.py"), "write").rule == rule


@pytest.mark.parametrize(
    ("relative", "rule"),
    [
        (".git/config", "protected_name"),
        (".env", "protected_name"),
        (".env.local", "protected_name"),
        ("node_modules/x/index.js", "protected_name"),
        ("src/__pycache__/m.pyc", "protected_name"),
        (".venv/bin/python", "protected_name"),
        ("sub/venv/lib", "protected_name"),
        (".massgen/state", "protected_name"),
        ("secrets/k", "protected_path"),
        ("secrets", "protected_path"),
    ],
)
def test_protected_stays_read_only_for_the_winner(tree, relative, rule):
    s = scope(tree, "present", True)
    path = str(tree["project"] / relative)
    assert s.check(path, "read").allowed
    assert s.check(path, "write").rule == rule


def test_file_context_path_grants_that_file_only(tree):
    s = scope(tree, "present", True)
    assert s.check(str(tree["single"]), "write").allowed
    assert s.check(str(tree["single"]) + ".bak", "read").rule == "outside_roots"
    assert s.check(str(tree["single"]) + "/x", "read").rule == "outside_roots"


def test_deepest_root_wins(tree):
    # The workspace inside a read-only context path stays writable.
    s = build_scope(
        label="agent1", phase="coordinate", is_winner=False, workspace=str(tree["ws"]),
        reference=None, labels=["agent1"],
        context_paths=[ContextRoot(str(tree["tmp"]), "read")], home=str(tree["home"]),
    )  # fmt: skip
    assert s.check(str(tree["ws"] / "f"), "write").allowed
    assert s.check(str(tree["outside"] / "f"), "write").rule == "context_read_only"
    assert s.check(str(tree["outside"] / "f"), "read").allowed


def test_delete_needs_read_or_creation(tree):
    s = scope(tree)
    ledger = AccessLedger()
    (tree["ws"] / "old.txt").write_text("x")
    assert s.check("old.txt", "delete", ledger).rule == "delete_without_read"
    ledger.record_read(str(tree["ws"] / "old.txt"))
    assert s.check("old.txt", "delete", ledger).allowed
    ledger.record_created(str(tree["ws"] / "made"))
    assert s.check("made/deep/file", "delete", ledger).allowed
    assert s.check(".", "delete", ledger).rule == "root_itself"


def test_denial_message_names_path_label_phase_rule_and_roots(tree):
    s = scope(tree)
    decision = s.check("../../../outside/secret.txt", "read")
    assert not decision.allowed
    for part in ("../../../outside/secret.txt", "agent1", "coordinating", "outside_roots",
                 str(tree["ws"]), str(tree["project"])):  # fmt: skip
        assert part in decision.message


def test_tilde_is_the_configured_home(tree):
    s = scope(tree)
    assert s.check("~/x", "read").path == str(tree["home"] / "x")
    assert s.check("~", "read").rule == "outside_roots"


def test_symlinks_resolve_before_the_check(tree):
    (tree["ws"] / "link_dir").symlink_to(tree["outside"])
    (tree["ws"] / "link_file").symlink_to(tree["outside"] / "secret.txt")
    (tree["ws"] / "inner").symlink_to(tree["ws"])
    s = scope(tree)
    assert s.check("link_dir/secret.txt", "read").rule == "outside_roots"
    assert s.check("link_file", "read").rule == "outside_roots"
    assert s.check("inner/x", "write").allowed


def test_many_checks_in_a_row(tree):
    # Not a timing assert (shared machine): bench/bench_gateway.py reports the figure.
    s = scope(tree)
    for _ in range(100):
        assert s.check("src/deep/file.txt", "write").allowed


# -- property: whatever the text, an allowed path is inside a root ----------------------

_SEGMENTS = st.sampled_from(
    ["..", ".", "", "a", "b", "link_out", "link_in", "~", "agent2", "agent1", "x y",
     ".git", "secrets", "project", "reference", "run", "%2e%2e", "\u2215", "\uff0e\uff0e"]
)  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.one_of(_SEGMENTS, st.text(string.printable, max_size=6)), max_size=8),
    absolute=st.booleans(),
    access=st.sampled_from(["read", "write", "delete"]),
    phase=st.sampled_from(["coordinate", "present"]),
)
def test_allowed_paths_never_leave_the_roots(tree, parts, absolute, access, phase):
    if not (tree["ws"] / "link_out").is_symlink():
        (tree["ws"] / "link_out").symlink_to(tree["outside"])
        (tree["ws"] / "link_in").symlink_to(tree["ws"])
    s = scope(tree, phase, True)
    raw = "/".join(parts)
    if absolute:
        raw = str(tree["ws"]) + "/" + raw
    ledger = AccessLedger(created={str(tree["ws"])})
    decision = s.check(raw, access, ledger)
    if decision.allowed:
        real = os.path.realpath(decision.path)
        assert real == decision.path
        assert any(r.contains(real) for r in s.roots)
        assert not real.startswith(str(tree["outside"]))
        if access != "read":
            assert not real.startswith(str(tree["ref"]))
    else:
        assert decision.message and decision.rule != "allowed"

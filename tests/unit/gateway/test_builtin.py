"""Built-in workspace tools: they work in the roots, and a symlink that appears between
the check and the operation makes the call fail instead of escaping."""

from __future__ import annotations

from pathlib import Path

import pytest
from massgen_gateway.builtin import SymlinkRace, ToolError, run_builtin
from massgen_gateway.permissions import AccessLedger, build_scope


@pytest.fixture
def setup(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("secret")
    s = build_scope(label="agent1", phase="coordinate", is_winner=False, workspace=str(ws),
                    reference=None, labels=["agent1"], home=str(tmp_path))  # fmt: skip
    return s, ws, out, AccessLedger()


def test_tools_round_trip(setup):
    s, ws, _, ledger = setup
    d = {"path": s.check("a/b.txt", "write", ledger)}
    assert "created" in run_builtin("write_file", d, {"content": "hello world"}, ledger)
    assert (
        run_builtin("read_file", {"path": s.check("a/b.txt", "read")}, {}, ledger) == "hello world"
    )
    run_builtin(
        "edit_file",
        {"path": s.check("a/b.txt", "write")},
        {"old_text": "world", "new_text": "there"},
        ledger,
    )
    assert (ws / "a" / "b.txt").read_text() == "hello there"
    listing = run_builtin("list_directory", {"path": s.check("a", "read")}, {}, ledger)
    assert "[FILE] b.txt" in listing
    found = run_builtin(
        "search_files", {"path": s.check(".", "read")}, {"pattern": "there"}, ledger
    )
    assert "a/b.txt:1: hello there" in found
    run_builtin(
        "copy", {"source": s.check("a", "read"), "destination": s.check("c", "write")}, {}, ledger
    )
    assert (ws / "c" / "b.txt").exists()
    run_builtin(
        "move",
        {"source": s.check("c", "delete", ledger), "destination": s.check("d", "write")},
        {},
        ledger,
    )
    assert (ws / "d" / "b.txt").exists() and not (ws / "c").exists()
    run_builtin("delete", {"path": s.check("d", "delete", ledger)}, {}, ledger)
    assert not (ws / "d").exists()
    with pytest.raises(ToolError, match="no such file"):
        run_builtin("read_file", {"path": s.check("missing.txt", "read")}, {}, ledger)


def test_file_symlink_created_after_the_check(setup):
    s, ws, out, ledger = setup
    decision = s.check("late.txt", "write", ledger)
    assert decision.allowed
    (ws / "late.txt").symlink_to(out / "secret.txt")
    with pytest.raises(SymlinkRace):
        run_builtin("write_file", {"path": decision}, {"content": "pwned"}, ledger)
    read = s.check("late2.txt", "read")
    (ws / "late2.txt").symlink_to(out / "secret.txt")
    with pytest.raises(SymlinkRace):
        run_builtin("read_file", {"path": read}, {}, ledger)
    assert (out / "secret.txt").read_text() == "secret"


def test_dir_symlink_created_after_the_check(setup):
    s, ws, out, ledger = setup
    decision = s.check("sub/new.txt", "write", ledger)
    assert decision.allowed
    (ws / "sub").symlink_to(out)
    with pytest.raises(SymlinkRace):
        run_builtin("write_file", {"path": decision}, {"content": "pwned"}, ledger)
    listing = s.check("sub2", "read")
    (ws / "sub2").symlink_to(out)
    with pytest.raises(SymlinkRace):
        run_builtin("list_directory", {"path": listing}, {}, ledger)
    assert sorted(p.name for p in out.iterdir()) == ["secret.txt"]

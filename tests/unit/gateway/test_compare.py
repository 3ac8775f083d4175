"""compare_files and compare_directories: diffs of what the checks allowed, never
following a symlink out of the roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from massgen_gateway.builtin import BUILTIN_TOOLS, ToolError, run_builtin
from massgen_gateway.permissions import AccessLedger, build_scope


@pytest.fixture
def setup(tmp_path: Path):
    ws = tmp_path / "ws"
    ws.mkdir()
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("secret\n")
    scope = build_scope(label="agent1", phase="coordinate", is_winner=False, workspace=str(ws),
                        reference=None, labels=["agent1"], home=str(tmp_path))  # fmt: skip
    return scope, ws, out, AccessLedger()


def compare(scope, ledger, tool, **args):
    spec = BUILTIN_TOOLS[tool]
    decisions = {a.name: scope.check(args[a.name], a.access, ledger) for a in spec.paths}
    for decision in decisions.values():
        assert decision.allowed, decision.message
    return run_builtin(tool, decisions, args, ledger)


def test_compare_files(setup):
    scope, ws, _, ledger = setup
    (ws / "a.py").write_text("x = 1\ny = 2\nz = 3\n")
    (ws / "b.py").write_text("x = 1\ny = 20\nz = 3\nw = 4\n")
    (ws / "c.py").write_text("x = 1\ny = 2\nz = 3\n")
    text = compare(scope, ledger, "compare_files", file1="a.py", file2="b.py")
    assert text.startswith("2 line(s) added, 1 removed")
    assert "-y = 2" in text and "+y = 20" in text and "+w = 4" in text
    assert f"--- {ws / 'a.py'}" in text
    assert "identical" in compare(scope, ledger, "compare_files", file1="a.py", file2="c.py")
    zero = compare(scope, ledger, "compare_files", file1="a.py", file2="b.py", context_lines=0)
    assert "x = 1" not in zero
    (ws / "bin1").write_bytes(b"\x00\x01")
    (ws / "bin2").write_bytes(b"\x00\x02")
    assert "binary files differ" in compare(
        scope, ledger, "compare_files", file1="bin1", file2="bin2"
    )
    with pytest.raises(ToolError, match="is a folder|not a regular file"):
        (ws / "d").mkdir()
        compare(scope, ledger, "compare_files", file1="d", file2="a.py")


def test_compare_directories(setup):
    scope, ws, out, ledger = setup
    trees = {
        "v1": {"same.txt": "s\n", "gone.txt": "g\n", "sub/edit.txt": "a\n"},
        "v2": {"same.txt": "s\n", "new.txt": "n\n", "sub/edit.txt": "b\n"},
    }
    for side, files in trees.items():
        for rel, content in files.items():
            (ws / side / rel).parent.mkdir(parents=True, exist_ok=True)
            (ws / side / rel).write_text(content)
    # A link out of the roots is compared as a link, never followed.
    os.symlink(out / "secret.txt", ws / "v2" / "leak")
    text = compare(scope, ledger, "compare_directories", dir1="v1", dir2="v2",
                   show_content_diff=True)  # fmt: skip
    assert "added (only in dir2): 2" in text and "+ new.txt" in text and "+ leak (link)" in text
    assert "removed (only in dir1): 1" in text and "- gone.txt" in text
    assert "changed: 1" in text and "~ sub/edit.txt" in text
    assert "identical files: 1" in text
    assert "-a" in text and "+b" in text  # the content diff of sub/edit.txt
    assert "secret" not in text.replace("secret.txt", "")


def test_compare_paths_are_checked(setup):
    scope, ws, out, ledger = setup
    denial = scope.check(str(out / "secret.txt"), BUILTIN_TOOLS["compare_files"].paths[1].access)
    assert not denial.allowed and denial.rule == "outside_roots"

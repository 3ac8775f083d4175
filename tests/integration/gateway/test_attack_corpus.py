# ruff: noqa: E501  (the case table reads best one case per line)
"""Attacks through the gateway: every one denied, and nothing outside the roots changed.

One run: agent1 (``a1``, the winner) has a workspace, the npm filesystem server (allowed
to roam the whole test folder: the gateway, not the server, must say no), the Python
test server, a write context path (``project``) and a read context path. agent2 (``a2``)
has a workspace holding a secret. Each case is (tool, arguments, phase).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from gateway_helpers import agent, fs_server, stdio_tools

W = "mcp__workspace__"
F = "mcp__filesystem__"
T = "mcp__tools__"

# {out} = the outside folder, {ws} = agent1's workspace, {proj} = the write context path,
# {ref} = the reference folder, {runs} = the runs folder, {home} = what ~ means.
CASES: list[tuple[str, str, dict, str]] = [
    ("dotdot_chain", W + "read_file", {"path": "../../../../outside/secret.txt"}, "coordinate"),
    (
        "dotdot_deep",
        W + "read_file",
        {"path": "a/b/../../../../../../../../etc/passwd"},
        "coordinate",
    ),
    ("absolute_outside", W + "read_file", {"path": "{out}/secret.txt"}, "coordinate"),
    ("etc_passwd", W + "read_file", {"path": "/etc/passwd"}, "coordinate"),
    (
        "write_dotdot",
        W + "write_file",
        {"path": "../../../../outside/pwn.txt", "content": "x"},
        "present",
    ),
    ("write_absolute", W + "write_file", {"path": "{out}/pwn.txt", "content": "x"}, "present"),
    ("tilde_read", W + "read_file", {"path": "~/secret.txt"}, "coordinate"),
    ("tilde_write", W + "write_file", {"path": "~/pwn.txt", "content": "x"}, "present"),
    ("tilde_root_user", W + "read_file", {"path": "~root/.bashrc"}, "coordinate"),
    ("symlink_dir_read", W + "read_file", {"path": "link_dir/secret.txt"}, "coordinate"),
    ("symlink_file_read", W + "read_file", {"path": "link_file"}, "coordinate"),
    (
        "symlink_dir_write",
        W + "write_file",
        {"path": "link_dir/pwn.txt", "content": "x"},
        "present",
    ),
    ("symlink_file_write", W + "write_file", {"path": "link_file", "content": "x"}, "present"),
    (
        "url_encoded_dots",
        W + "read_file",
        {"path": "%2e%2e/%2e%2e/%2e%2e/%2e%2e/outside/secret.txt"},
        "coordinate",
    ),
    (
        "url_encoded_slash",
        W + "read_file",
        {"path": "..%2f..%2f..%2f..%2foutside%2fsecret.txt"},
        "coordinate",
    ),
    ("double_encoded", W + "read_file", {"path": "..%252f..%252f..%252foutside"}, "coordinate"),
    (
        "division_slash",
        W + "read_file",
        {"path": "..\u2215..\u2215..\u2215..\u2215outside\u2215secret.txt"},
        "coordinate",
    ),
    (
        "fullwidth_dots",
        W + "read_file",
        {"path": "\uff0e\uff0e/\uff0e\uff0e/\uff0e\uff0e/\uff0e\uff0e/outside"},
        "coordinate",
    ),
    (
        "fullwidth_solidus",
        W + "write_file",
        {"path": "..\uff0f..\uff0foutside\uff0fpwn", "content": "x"},
        "present",
    ),
    ("backslashes", W + "read_file", {"path": "..\\..\\..\\..\\outside\\secret.txt"}, "coordinate"),
    (
        "nul_byte",
        W + "read_file",
        {"path": "ok.txt\x00/../../../../outside/secret.txt"},
        "coordinate",
    ),
    ("file_uri", W + "read_file", {"path": "file://{out}/secret.txt"}, "coordinate"),
    (
        "context_write_coordinating",
        W + "write_file",
        {"path": "{proj}/src/main.py", "content": "x"},
        "coordinate",
    ),
    (
        "context_edit_coordinating",
        W + "edit_file",
        {"path": "{proj}/README.md", "old_text": "readme", "new_text": "x"},
        "coordinate",
    ),
    ("context_delete_coordinating", W + "delete", {"path": "{proj}/README.md"}, "coordinate"),
    (
        "git_in_write_context",
        W + "write_file",
        {"path": "{proj}/.git/config", "content": "x"},
        "present",
    ),
    ("env_in_write_context", W + "write_file", {"path": "{proj}/.env", "content": "x"}, "present"),
    (
        "node_modules_in_context",
        W + "write_file",
        {"path": "{proj}/node_modules/x.js", "content": "x"},
        "present",
    ),
    ("venv_in_context", W + "create_directory", {"path": "{proj}/.venv/evil"}, "present"),
    ("protected_path", W + "write_file", {"path": "{proj}/secrets/k", "content": "x"}, "present"),
    ("read_context_write", W + "write_file", {"path": "{ro}/notes.md", "content": "x"}, "present"),
    ("delete_without_read", W + "delete", {"path": "preexisting.txt"}, "coordinate"),
    ("delete_workspace_root", W + "delete", {"path": "."}, "coordinate"),
    ("other_agent_by_real_id", W + "read_file", {"path": "{ref}/a2/secret.txt"}, "coordinate"),
    (
        "other_agent_workspace",
        W + "read_file",
        {"path": "{runs}/r/workspaces/agent2/secret.txt"},
        "coordinate",
    ),
    ("list_parent", W + "list_directory", {"path": ".."}, "coordinate"),
    (
        "reference_write",
        W + "write_file",
        {"path": "{ref}/agent2/pwn.txt", "content": "x"},
        "present",
    ),
    (
        "move_out",
        W + "move",
        {"source": "mine.txt", "destination": "../../../../outside/moved.txt"},
        "present",
    ),
    (
        "copy_in_secret",
        W + "copy",
        {"source": "{out}/secret.txt", "destination": "stolen.txt"},
        "coordinate",
    ),
    ("copy_out", W + "copy", {"source": "mine.txt", "destination": "{out}/copied.txt"}, "present"),
    ("search_outside", W + "search_files", {"path": "{out}", "pattern": "secret"}, "coordinate"),
    ("mkdir_outside", W + "create_directory", {"path": "../../../../outside/newdir"}, "present"),
    ("fs_read_absolute", F + "read_text_file", {"path": "{out}/secret.txt"}, "coordinate"),
    (
        "fs_write_dotdot",
        F + "write_file",
        {"path": "../../../../outside/pwn.txt", "content": "x"},
        "present",
    ),
    (
        "fs_read_multiple",
        F + "read_multiple_files",
        {"paths": ["mine.txt", "{out}/secret.txt"]},
        "coordinate",
    ),
    (
        "fs_move_secret_in",
        F + "move_file",
        {"source": "{out}/secret.txt", "destination": "got.txt"},
        "present",
    ),
    ("fs_list_outside", F + "list_directory", {"path": "{out}"}, "coordinate"),
    ("fs_tree_parent", F + "directory_tree", {"path": ".."}, "coordinate"),
    (
        "fs_write_context_coordinating",
        F + "write_file",
        {"path": "{proj}/src/x.py", "content": "x"},
        "coordinate",
    ),
    ("fs_mkdir_home", F + "create_directory", {"path": "~/pwn"}, "present"),
    (
        "fs_edit_symlink",
        F + "edit_file",
        {"path": "link_file", "edits": [{"oldText": "secret", "newText": "x"}]},
        "present",
    ),
    (
        "fs_search_symlink_dir",
        F + "search_files",
        {"path": "link_dir", "pattern": "secret"},
        "coordinate",
    ),
    (
        "fs_write_git",
        F + "write_file",
        {"path": "{proj}/.git/hooks/pre-commit", "content": "x"},
        "present",
    ),
    ("py_read_etc", T + "read_path", {"path": "/etc/passwd"}, "coordinate"),
    ("py_write_outside", T + "write_note", {"path": "{out}/note.txt", "text": "x"}, "present"),
    (
        "py_path_in_other_key",
        T + "echo",
        {"text": "hi", "target": "{out}/secret.txt"},
        "coordinate",
    ),
]

assert len(CASES) >= 40


def manifest(*folders: Path) -> dict[str, str]:
    """Every entry under the folders: path -> content hash / link target / 'dir'."""
    out: dict[str, str] = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = Path(root) / name
                if path.is_symlink():
                    out[str(path)] = "link:" + os.readlink(path)
                elif path.is_dir():
                    out[str(path)] = "dir"
                else:
                    out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
async def attack_run(client, gateway_settings, tmp_path):
    base = tmp_path
    out = base / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("secret")
    (base / "home" / "secret.txt").write_text("home secret")
    proj = base / "project"
    for sub in ("src", ".git", "secrets"):
        (proj / sub).mkdir(parents=True)
    (proj / "README.md").write_text("readme")
    (proj / "src" / "main.py").write_text("print(1)")
    (proj / ".env").write_text("KEY=1")
    (proj / ".git" / "config").write_text("[core]")
    (proj / "secrets" / "k").write_text("k")
    ro = base / "readonly"
    ro.mkdir()
    (ro / "notes.md").write_text("notes")
    config = {
        "agents": [
            agent("a1", fs_server(base), stdio_tools(), cwd="workspaces/agent1"),
            agent("a2", cwd="workspaces/agent2"),
        ],
        "orchestrator": {
            "context_paths": [
                {"path": str(proj), "permission": "write", "protected_paths": ["secrets"]},
                {"path": str(ro), "permission": "read"},
            ]
        },
    }
    await client.put_run("r", config, winner="agent1")
    listing = await client.list("r")
    assert not listing.errors, listing.errors
    await client.list("r", "a2", "agent2")
    runs = Path(gateway_settings.workspace_root)
    ws = runs / "r" / "workspaces" / "agent1"
    (runs / "r" / "workspaces" / "agent2" / "secret.txt").write_text("agent2 secret")
    (ws / "link_dir").symlink_to(out)
    (ws / "link_file").symlink_to(out / "secret.txt")
    (ws / "preexisting.txt").write_text("old")
    result = await client.call("r", W + "write_file", {"path": "mine.txt", "content": "mine"})
    assert not result.is_error, result.content
    ref = runs / "r" / "reference"
    (ref / "agent2").mkdir(parents=True)
    values = {
        "out": out,
        "ws": ws,
        "proj": proj,
        "ref": ref,
        "runs": runs,
        "home": base / "home",
        "ro": ro,
    }
    return values, [out, proj, ro, base / "home", ref, runs / "r" / "workspaces" / "agent2"]


def fill(value, values):
    if isinstance(value, str):
        return value.format(**values) if "{" in value else value
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    return value


async def test_every_attack_is_denied_and_nothing_outside_changes(client, attack_run):
    values, guarded = attack_run
    before = manifest(*guarded)
    failures = []
    for case, tool, arguments, phase in CASES:
        result = await client.call("r", tool, fill(arguments, values), phase=phase)
        if not (
            result.kind == "tool_result" and result.denied and "Permission denied" in result.content
        ):
            failures.append(f"{case}: {result}")
        elif "agent1" not in result.content or "[rule:" not in result.content:
            failures.append(f"{case}: denial lacks label or rule: {result.content}")
    assert not failures, "\n".join(failures)
    assert manifest(*guarded) == before


async def test_the_same_tools_work_inside_the_roots(client, attack_run):
    values, _ = attack_run
    ok = [
        (W + "read_file", {"path": "mine.txt"}, "coordinate"),
        (W + "read_file", {"path": "{proj}/README.md"}, "coordinate"),
        (W + "write_file", {"path": "{proj}/src/new.py", "content": "x"}, "present"),
        (F + "read_text_file", {"path": "mine.txt"}, "coordinate"),
        (F + "write_file", {"path": "{proj}/src/fs.py", "content": "y"}, "present"),
        (W + "read_file", {"path": "preexisting.txt"}, "coordinate"),
        (W + "delete", {"path": "preexisting.txt"}, "coordinate"),
    ]
    for tool, arguments, phase in ok:
        result = await client.call("r", tool, fill(arguments, values), phase=phase)
        assert not result.is_error, (tool, result.content)
    assert (values["proj"] / "src" / "fs.py").read_text() == "y"
    assert not (values["ws"] / "preexisting.txt").exists()
    # agent2 is not the winner: the same context write is denied while presenting.
    denied = await client.call("r", W + "write_file", fill({"path": "{proj}/src/b.py", "content": "x"}, values),
                               agent_id="a2", label="agent2", phase="present")  # fmt: skip
    assert denied.denied and "context_read_only_not_winner" in denied.content

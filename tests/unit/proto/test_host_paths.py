"""Keys of a tenant's config that name paths on the server are found, each named."""

from __future__ import annotations

import pytest
from massgen_proto.config import load_config, parse_config
from massgen_proto.host_paths import host_path_problems

from tests.unit.proto.test_massgen_corpus import VENDORED


def _agent(**backend) -> dict:
    return {"id": "a", "backend": {"type": "openai", "model": "gpt-4o", **backend}}


def problems(**sections) -> list[str]:
    config = {"agents": [_agent(**sections.pop("backend", {}))], **sections}
    return [key for key, _ in host_path_problems(parse_config(config))]


@pytest.mark.parametrize(
    "cwd", ["/", "/etc", "~/x", "../other-run", "a/../../b", "..", "C:\\Users", "\\\\host\\s"]
)
def test_a_workspace_outside_the_runs_folder_is_found(cwd):
    assert problems(backend={"cwd": cwd}) == ["agents[0].backend.cwd"]


@pytest.mark.parametrize("cwd", ["workspace1", "a/b", "./ws", "a/../b"])
def test_a_plain_relative_workspace_is_allowed(cwd):
    assert problems(backend={"cwd": cwd}) == []


def test_context_paths_local_uploads_files_and_folders_are_found():
    found = problems(
        backend={
            "cwd": "ws",
            "command_execution_venv_path": "/opt/venv",
            "custom_tools": [
                {"path": "/srv/tools.py", "function": "f"},
                {"path": "massgen/tool/_basic/_two_num_tool.py", "function": "two_num_tool"},
                {"function": "two_num_tool", "name": "add"},
            ],
            "upload_files": [{"image_path": "/etc/passwd"}, {"image_path": "https://x.org/a.png"}],
        },
        orchestrator={
            "context_paths": [{"path": "/var/run/secrets", "permission": "read"}],
            "snapshot_storage": "/tmp/snaps",
            "agent_temporary_workspace": "temp_workspaces",
            "coordination": {"use_skills": True, "skills_directory": "/root/.agent/skills"},
        },
    )
    assert found == [
        "agents[0].backend.command_execution_venv_path",
        "agents[0].backend.custom_tools[0].path",
        "agents[0].backend.upload_files[0].image_path",
        "orchestrator.context_paths[0]",
        "orchestrator.snapshot_storage",
        "orchestrator.coordination.skills_directory",
    ]


def test_the_message_names_the_setting_that_allows_them():
    config = parse_config({"agents": [_agent(cwd="/")]})
    [(_, why)] = host_path_problems(config)
    assert "MASSGEN_API_ALLOW_HOST_PATHS" in why and "relative path without '..'" in why


def test_most_of_massgens_example_configs_name_no_host_path():
    # The teams a tenant would send: MassGen's examples with relative workspaces.
    clean = 0
    for path in sorted(VENDORED.rglob("*.yaml")):
        try:
            config = load_config(path)
        except Exception:  # noqa: BLE001 - refused configs are another test's subject
            continue
        clean += not host_path_problems(config)
    assert clean >= 100

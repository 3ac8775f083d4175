"""The CLI's own gateway reads the user's ``MASSGEN_GATEWAY_*`` variables, as a deployed
gateway does, but always connects to the command's own nats-server."""

from __future__ import annotations

from pathlib import Path

import pytest
from massgen_cli.embedded import gateway_settings

NATS = "nats://127.0.0.1:4333"


@pytest.fixture(autouse=True)
def no_gateway_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UPLOAD_URL_PRIVATE", "SANDBOX", "NATS_URL", "UPLOAD_URL_TIMEOUT"):
        monkeypatch.delenv(f"MASSGEN_GATEWAY_{name}", raising=False)


def test_by_default_the_users_machine_runs_commands_and_refuses_private_upload_urls(
    tmp_path: Path,
):
    settings = gateway_settings(NATS, tmp_path)
    assert settings.nats_url == NATS and settings.memory_streams
    assert settings.final_dir == str(tmp_path / "final_workspace")
    assert settings.unsandboxed_exec and settings.exec_network
    assert not settings.upload_url_private


def test_the_users_variables_reach_it_but_not_where_it_connects(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("MASSGEN_GATEWAY_UPLOAD_URL_PRIVATE", "1")
    monkeypatch.setenv("MASSGEN_GATEWAY_UPLOAD_URL_TIMEOUT", "5")
    monkeypatch.setenv("MASSGEN_GATEWAY_NATS_URL", "nats://elsewhere:4222")
    settings = gateway_settings(NATS, None)
    assert settings.upload_url_private and settings.upload_url_timeout == 5.0
    assert settings.nats_url == NATS and settings.final_dir is None


def test_a_sandbox_asked_for_keeps_commands_inside_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MASSGEN_GATEWAY_SANDBOX", "bwrap")
    settings = gateway_settings(NATS, None)
    assert settings.sandbox == "bwrap" and not settings.unsandboxed_exec

"""WorkerSettings: the tool-result limit, and the deprecated max_tool_rounds still accepted."""

from __future__ import annotations

import pytest
from massgen_worker.settings import WorkerSettings
from pydantic import ValidationError


def test_tool_result_limit_defaults_and_comes_from_the_environment():
    assert WorkerSettings().max_tool_result_chars == 20_000
    env = {"MASSGEN_WORKER_MAX_TOOL_RESULT_CHARS": "500"}
    assert WorkerSettings.from_env(env).max_tool_result_chars == 500
    with pytest.raises(ValidationError, match="max_tool_result_chars"):
        WorkerSettings(max_tool_result_chars=0)


def test_deprecated_max_tool_rounds_still_starts_a_worker():
    """Deployments that set it keep starting; the turn's tool budget bounds the loop now."""
    settings = WorkerSettings.from_env({"MASSGEN_WORKER_MAX_TOOL_ROUNDS": "6"})
    assert settings.max_tool_rounds == 6
    assert "max_tool_rounds" in settings.model_fields_set  # the service logs a warning

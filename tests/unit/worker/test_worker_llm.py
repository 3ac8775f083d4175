"""LiteLLMModel's pure parts: backend → litellm parameters, and error classification."""

from __future__ import annotations

import pytest
from massgen_proto.messages import BackendSpec
from massgen_worker.llm import (
    FatalModelError,
    RetryableModelError,
    build_call_params,
    classify_error,
)

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "new_answer", "parameters": {}}}]


def test_openai_backend_with_env_key_and_passthrough():
    backend = BackendSpec(
        type="openai",
        model="gpt-4o-mini",
        temperature=0.2,
        max_tokens=300,
        params={"reasoning": {"effort": "low", "summary": "auto"}, "text": {"verbosity": "low"},
                "top_p": 0.9, "seed": None},
    )
    params = build_call_params(backend, MESSAGES, TOOLS, "required", env={"OPENAI_API_KEY": "sk-1"})
    assert params == {
        "model": "openai/gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_retries": 0,
        "num_retries": 0,
        "api_key": "sk-1",
        "temperature": 0.2,
        "max_tokens": 300,
        "tools": TOOLS,
        "tool_choice": "required",
        "reasoning_effort": "low",
        "top_p": 0.9,
    }


def test_default_base_url_and_config_key_win():
    backend = BackendSpec(type="zai", model="glm-4.5", api_key="k-config")
    params = build_call_params(backend, MESSAGES, None, None, env={"ZAI_API_KEY": "k-env"})
    assert params["model"] == "openai/glm-4.5"
    assert params["api_base"] == "https://api.z.ai/api/paas/v4"
    assert params["api_key"] == "k-config"
    assert "tools" not in params and "tool_choice" not in params


def test_chatcompletion_uses_base_url_and_dummy_key():
    backend = BackendSpec(type="chatcompletion", model="m1", base_url="http://127.0.0.1:9/v1")
    params = build_call_params(backend, MESSAGES, TOOLS, "required", env={})
    assert params["model"] == "openai/m1"
    assert params["api_base"] == "http://127.0.0.1:9/v1"
    assert params["api_key"] == "not-needed"


def test_missing_key_is_fatal_and_names_the_variable():
    backend = BackendSpec(type="claude", model="claude-sonnet-4-5")
    with pytest.raises(FatalModelError, match="set ANTHROPIC_API_KEY"):
        build_call_params(backend, MESSAGES, None, None, env={})


def test_unknown_type_and_missing_base_url_are_fatal():
    with pytest.raises(FatalModelError, match="unknown backend type 'nope'.*openai"):
        build_call_params(BackendSpec(type="nope", model="x"), MESSAGES, None, None, env={})
    with pytest.raises(FatalModelError, match="needs backend.base_url"):
        build_call_params(BackendSpec(type="chatcompletion", model="x"), MESSAGES, None, None,
                          env={})


class StatusError(Exception):
    def __init__(self, status_code, message):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 529])
def test_retryable_statuses(status):
    error = classify_error(StatusError(status, f"provider says {status}"))
    assert isinstance(error, RetryableModelError)
    assert error.message == f"provider says {status}"
    assert error.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_fatal_statuses(status):
    error = classify_error(StatusError(status, "no"))
    assert isinstance(error, FatalModelError) and not error.retryable


def test_timeouts_and_connection_errors_are_retryable():
    assert isinstance(classify_error(TimeoutError("slow")), RetryableModelError)
    assert isinstance(classify_error(ConnectionResetError("reset")), RetryableModelError)
    assert isinstance(classify_error(ValueError("weird")), FatalModelError)

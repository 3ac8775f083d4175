"""The operator's endpoint policy: a tenant cannot send the organisation's key elsewhere."""

from __future__ import annotations

import pytest
from massgen_proto.config import parse_config
from massgen_proto.endpoints import EndpointPolicy
from massgen_proto.messages import BackendSpec
from massgen_worker.llm import FatalModelError, build_call_params

POLICY = "openai=api.openai.com;vllm=vllm.models.svc:8000, vllm-b"


def test_parse_and_decide():
    policy = EndpointPolicy.parse(POLICY)
    assert policy.allowed["vllm"] == {"vllm.models.svc:8000", "vllm-b"}
    assert policy.problem("openai", None, own_key=False) is None  # the provider's own endpoint
    assert policy.problem("openai", "https://api.openai.com/v1", own_key=False) is None
    assert policy.problem("openai", "https://evil.example/v1", own_key=True) is None  # own key
    why = policy.problem("openai", "https://evil.example/v1", own_key=False)
    assert why and "'evil.example'" in why and "organisation's key" in why
    assert "api.openai.com" in why and "backend.api_key" in why
    assert policy.problem("vllm", "http://vllm.models.svc:8000/v1", own_key=False) is None
    assert policy.problem("vllm", "http://vllm-b:9999/v1", own_key=False) is None  # host listed
    assert policy.problem("vllm", "http://vllm.models.svc:9000/v1", own_key=False)  # other port
    assert policy.problem("vllm", "http://10.0.0.7:8000/v1", own_key=False)  # keyless, unlisted


def test_off_when_unset_and_errors_name_the_problem():
    assert EndpointPolicy.from_env({}).problem("openai", "http://x/v1", own_key=False) is None
    assert EndpointPolicy.parse("").problem("vllm", "http://x/v1", own_key=False)  # set: on
    with pytest.raises(ValueError, match="unknown backend type 'nope'"):
        EndpointPolicy.parse("nope=h")
    with pytest.raises(ValueError, match="not 'type=host"):
        EndpointPolicy.parse("openai")


def test_config_problems_name_the_agent():
    config = parse_config({"agents": [
        {"id": "a", "backend": {"type": "openai", "model": "m"}},
        {"id": "b", "backend": {"type": "openai", "model": "m", "base_url": "http://evil/v1"}},
    ]})  # fmt: skip
    problems = EndpointPolicy.parse(POLICY).problems(config)
    assert [path for path, _ in problems] == ["agents[1].backend.base_url"]


def test_the_worker_never_sends_the_key_to_a_refused_host():
    env = {"OPENAI_API_KEY": "sk-org", "MASSGEN_PROVIDER_ENDPOINTS": POLICY}
    spec = BackendSpec(type="openai", model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(FatalModelError, match="base_url refused"):
        build_call_params(spec, [], None, None, env=env)
    own = spec.model_copy(update={"api_key": "sk-tenant"})
    assert build_call_params(own, [], None, None, env=env)["api_key"] == "sk-tenant"
    default = spec.model_copy(update={"base_url": None})
    assert build_call_params(default, [], None, None, env=env)["api_key"] == "sk-org"


def test_connect_options_trust_the_nats_ca_file_only_when_given(monkeypatch):
    import ssl

    import certifi
    from massgen_kit.health import connect_options

    monkeypatch.delenv("NATS_CA_FILE", raising=False)
    plain = connect_options("nats://orchestrator:pw@nats:4222", "x")
    assert plain == {"inbox_prefix": "_INBOX_orchestrator", "reconnect_time_wait": 0.5}
    monkeypatch.setenv("NATS_CA_FILE", certifi.where())
    secured = connect_options("tls://nats:4222", "api")
    assert secured["inbox_prefix"] == "_INBOX_api"
    assert isinstance(secured["tls"], ssl.SSLContext)

"""The run-config model: MassGen keys, errors that name the key, the compatibility corpus."""

from pathlib import Path

import pytest

from massgen_proto.config import ConfigError, load_config, parse_config

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "reference" / "massgen-configs"


def _agent(**backend):
    return {"id": "a", "backend": {"type": "openai", "model": "gpt-4o-mini", **backend}}


def test_single_agent_form_becomes_a_list():
    config = parse_config({"agent": _agent()})
    assert [a.id for a in config.agents] == ["a"]
    assert config.orchestrator.restart_policy == "finish"
    assert config.orchestrator.max_agent_failures == 3


def test_unknown_backend_type_names_the_key_and_lists_known_types():
    with pytest.raises(ConfigError, match=r"agents\[1\]\.backend\.type: unknown backend type 'gpt'"):
        parse_config({"agents": [_agent(), {"id": "b", "backend": {"type": "gpt", "model": "x"}}]})


def test_agent_and_agents_together_is_refused():
    with pytest.raises(ConfigError, match="either 'agent'.*or 'agents'"):
        parse_config({"agent": _agent(), "agents": [_agent()]})


def test_duplicate_ids_are_named():
    with pytest.raises(ConfigError, match="duplicate agent ids: a"):
        parse_config({"agents": [_agent(), _agent()]})


def test_wrong_types_point_at_the_key():
    with pytest.raises(ConfigError) as excinfo:
        parse_config({"agents": [_agent(temperature="hot")],
                      "orchestrator": {"max_new_answers_per_agent": "two"}})  # fmt: skip
    paths = [path for path, _ in excinfo.value.problems]
    assert "agents[0].backend.temperature" in paths
    assert "orchestrator.max_new_answers_per_agent" in paths


def test_unknown_orchestrator_key_is_named():
    with pytest.raises(ConfigError, match=r"orchestrator\.restart: unknown key"):
        parse_config({"agent": _agent(), "orchestrator": {"restart": "finish"}})


def test_chatcompletion_needs_base_url():
    with pytest.raises(ConfigError, match="needs 'base_url'"):
        parse_config({"agent": {"id": "a", "backend": {"type": "chatcompletion", "model": "m"}}})


def test_passthrough_params_exclude_massgen_only_keys():
    config = parse_config({"agent": _agent(top_p=0.5, enable_web_search=True)})
    backend = config.agents[0].backend
    assert backend.passthrough_params() == {"top_p": 0.5}
    assert config.warnings() == [
        "agents[0].backend.enable_web_search: ignored (provider built-in tools and Claude "
        "Code settings are not applied by this project)"
    ]


def test_mcp_servers_map_form_and_name_rule():
    config = parse_config({"agent": _agent(mcp_servers={"weather": {"type": "stdio", "command": "x"}})})
    assert config.agents[0].backend.mcp_servers[0].name == "weather"
    with pytest.raises(ConfigError, match="must match"):
        parse_config({"agent": _agent(mcp_servers=[{"name": "bad name", "type": "stdio", "command": "x"}])})


def test_yaml_error_names_file_and_line(tmp_path):
    path = tmp_path / "team.yaml"
    path.write_text("agents:\n  - id: a\n   backend: [\n")
    with pytest.raises(ConfigError, match=r"team\.yaml: .*not valid YAML at line"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_env_substitution_in_mcp_args(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_TOKEN", "s3cret")
    path = tmp_path / "team.yaml"
    path.write_text(
        "agent:\n  id: a\n  backend:\n    type: openai\n    model: m\n    mcp_servers:\n"
        "      - {name: w, type: stdio, command: x, args: ['--token', '${MY_TOKEN}']}\n"
    )
    assert load_config(path).agents[0].backend.mcp_servers[0].args == ["--token", "s3cret"]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared MassGen config corpus is not beside the repo")
def test_every_corpus_config_gets_a_clear_result():
    accepted, rejected = 0, 0
    for path in sorted(CORPUS.rglob("*.yaml")):
        try:
            load_config(path)
            accepted += 1
        except ConfigError as error:
            rejected += 1
            for key, message in error.problems:
                assert "not supported" in message, f"{path}: {key}: {message}"
                assert str(path) in str(error)
    assert accepted + rejected == 98
    assert accepted >= 70

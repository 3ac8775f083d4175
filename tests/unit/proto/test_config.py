"""The run-config model: MassGen keys, errors that name the key, warnings for the rest.

The MassGen config corpus is checked file by file in ``test_massgen_corpus.py``.
"""

import pytest
from massgen_proto.config import ConfigError, load_config, parse_config


def _agent(**backend):
    return {"id": "a", "backend": {"type": "openai", "model": "gpt-4o-mini", **backend}}


def test_single_agent_form_becomes_a_list():
    config = parse_config({"agent": _agent()})
    assert [a.id for a in config.agents] == ["a"]
    assert config.orchestrator.restart_policy == "finish"
    assert config.orchestrator.max_agent_failures == 3


def test_unknown_backend_type_names_the_key_and_lists_known_types():
    with pytest.raises(
        ConfigError, match=r"agents\[1\]\.backend\.type: unknown backend type 'gpt'"
    ):
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


def test_passthrough_params_hold_provider_params_and_builtin_switches_only():
    config = parse_config({"agent": _agent(top_p=0.5, enable_web_search=True, permission_mode="x",
                                           temprature=0.3)})  # fmt: skip
    backend = config.agents[0].backend
    assert backend.passthrough_params() == {"top_p": 0.5, "enable_web_search": True}
    assert config.warnings() == [
        "agents[0].backend.permission_mode: ignored (a Claude Code setting; tool permissions "
        "here come from orchestrator.context_paths)",
        "agents[0].backend.temprature: not a parameter of backend type 'openai', so it is not "
        "sent to the provider",
    ]


def test_builtin_tool_the_provider_lacks_is_refused_at_its_key():
    with pytest.raises(ConfigError) as excinfo:
        parse_config({"agents": [
            _agent(enable_web_search=True),
            {"id": "b", "backend": {"type": "lmstudio", "model": "m", "enable_web_search": True,
                                    "enable_code_interpreter": True}},
            {"id": "c", "backend": {"type": "grok", "model": "grok-4",
                                    "enable_code_execution": True}},
        ]})  # fmt: skip
    problems = dict(excinfo.value.problems)
    assert set(problems) == {
        "agents[1].backend.enable_web_search",
        "agents[1].backend.enable_code_interpreter",
        "agents[2].backend.enable_code_execution",
    }
    web = problems["agents[1].backend.enable_web_search"]
    assert "'lmstudio' has no provider web search" in web
    assert (
        "types with it: claude, gemini, openai"
        in problems["agents[2].backend.enable_code_execution"]
    )


def test_builtin_switches_off_are_accepted_everywhere_and_not_passed():
    config = parse_config({"agent": {"id": "a", "backend": {
        "type": "lmstudio", "model": "m", "enable_web_search": False}}})  # fmt: skip
    assert config.agents[0].backend.passthrough_params() == {}
    assert config.warnings() == []


def test_massgen_nested_keys_warn_where_they_cannot_apply():
    config = parse_config({"agents": [
        _agent(reasoning={"effort": "low", "summary": "auto"}, text={"verbosity": "low"}),
        {"id": "g", "backend": {"type": "gemini", "model": "gemini-2.5-flash",
                                "reasoning": {"effort": "low", "summary": "auto", "x": 1},
                                "text": {"verbosity": "low"}}},
        {"id": "x", "backend": {"type": "grok", "model": "grok-3-mini",
                                "extra_body": {"search_parameters": {"mode": "auto"}, "k": 1}}},
    ]})  # fmt: skip
    assert config.warnings() == [
        "agents[1].backend.reasoning.x: ignored (only effort and summary are used)",
        "agents[1].backend.reasoning.summary: ignored (reasoning summaries are OpenAI's)",
        "agents[1].backend.text.verbosity: ignored (verbosity is an OpenAI parameter)",
        "agents[2].backend.extra_body.search_parameters: not sent: xAI retired Live Search; set "
        "enable_web_search: true for xAI's web search tool",
    ]
    assert config.agents[2].backend.passthrough_params() == {"extra_body": {"k": 1}}


def test_coordination_block_planning_applied_and_other_keys_refused_or_warned():
    config = parse_config({"agent": _agent(), "orchestrator": {"coordination": {
        "enable_planning_mode": True, "planning_mode_instruction": "Plan only.",
        "max_orchestration_restarts": 2, "enable_agent_task_planning": True,
        "max_tasks_per_plan": 5, "task_planning_filesystem_mode": True}}})  # fmt: skip
    coordination = config.orchestrator.coordination
    assert coordination.enable_planning_mode
    assert coordination.planning_mode_instruction == "Plan only."
    assert config.warnings() == [
        "orchestrator.coordination.max_orchestration_restarts: ignored (no post-evaluation "
        "restarts: a run ends with the winner's final presentation)",
        "orchestrator.coordination.enable_agent_task_planning: ignored (agents get no task-list "
        "tool; max_tasks_per_plan and task_planning_filesystem_mode with it)",
    ]
    with pytest.raises(ConfigError) as excinfo:
        parse_config({"agent": _agent(), "orchestrator": {
            "coordination": {"use_skills": True, "enable_memory_filesystem_mode": True}}})  # fmt: skip
    problems = dict(excinfo.value.problems)
    assert list(problems) == ["orchestrator.coordination.enable_memory_filesystem_mode"]
    assert "memory" in problems["orchestrator.coordination.enable_memory_filesystem_mode"]
    relaxed = parse_config({"agent": _agent(), "orchestrator": {
        "skip_coordination_rounds": False, "coordination": {"use_skills": False}}})  # fmt: skip
    assert relaxed.warnings() == []


def test_skills_are_typed_defaulted_and_make_agents_use_tools():
    on = parse_config({"agent": _agent(), "orchestrator": {
        "coordination": {"use_skills": True, "skills_directory": None}}})  # fmt: skip
    coordination = on.orchestrator.coordination
    assert coordination.use_skills and coordination.skills_directory == ".agent/skills"
    assert on.uses_tools(on.agents[0]) and on.warnings() == []
    off = parse_config({"agent": _agent(), "orchestrator": {"coordination": {
        "skills_directory": "my/skills", "massgen_skills": ["file_search"]}}})  # fmt: skip
    assert not off.uses_tools(off.agents[0])
    assert [w.split(":")[0] for w in off.warnings()] == [
        "orchestrator.coordination.skills_directory",
        "orchestrator.coordination.massgen_skills",
    ]
    with pytest.raises(ConfigError) as excinfo:
        parse_config({"agent": _agent(), "orchestrator": {"coordination": {
            "use_skills": "sometimes", "skills_directory": ""}}})  # fmt: skip
    assert set(dict(excinfo.value.problems)) == {
        "orchestrator.coordination.use_skills",
        "orchestrator.coordination.skills_directory",
    }


def test_skip_coordination_is_applied_and_the_debug_answer_warned_about():
    config = parse_config({"agent": _agent(), "orchestrator": {
        "skip_coordination_rounds": True, "debug_final_answer": "Only half an answer."}})  # fmt: skip
    assert config.orchestrator.skip_coordination_rounds
    assert config.warnings() == [
        "orchestrator.debug_final_answer: ignored (MassGen only hands it to its "
        "post-evaluation, to test restarts; no post-evaluation or restart happens here, see "
        "max_orchestration_restarts)"
    ]


def test_logging_disabled_in_ui_is_applied_by_the_cli_so_not_warned_about():
    config = parse_config({"agent": _agent(), "ui": {"logging_enabled": False}})
    assert config.warnings() == []


def test_append_system_prompt_joins_the_system_message_once():
    config = parse_config({"agent": {**_agent(), "system_message": "Be brief.",
                                      "append_system_prompt": "Cite sources."}})  # fmt: skip
    assert config.agents[0].system_message == "Be brief.\n\nCite sources."
    again = parse_config(config.model_dump(mode="json"))
    assert again.agents[0].system_message == "Be brief.\n\nCite sources."


def test_a_file_without_agents_is_not_a_team_config():
    with pytest.raises(ConfigError, match="not a team config: .*top-level keys found: gemini"):
        parse_config({"gemini": {"rpm": 10}})


def test_dumped_config_parses_to_the_same_config():
    config = parse_config({"agents": [
        _agent(enable_web_search=True, reasoning={"effort": "low"}, permission_mode="x"),
        {"id": "c", "backend": {"type": "chatcompletion", "model": "m",
                                "base_url": "https://api.cerebras.ai/v1"}},
    ], "orchestrator": {"coordination": {"enable_planning_mode": True}}})  # fmt: skip
    again = parse_config(config.model_dump(mode="json"))
    assert again == config
    assert again.warnings() == config.warnings()


def test_mcp_servers_map_form_and_name_rule():
    config = parse_config(
        {"agent": _agent(mcp_servers={"weather": {"type": "stdio", "command": "x"}})}
    )
    assert config.agents[0].backend.mcp_servers[0].name == "weather"
    with pytest.raises(ConfigError, match="must match"):
        parse_config(
            {"agent": _agent(mcp_servers=[{"name": "bad name", "type": "stdio", "command": "x"}])}
        )


def test_yaml_error_names_file_and_line(tmp_path):
    path = tmp_path / "team.yaml"
    path.write_text("agents:\n  - id: a\n   backend: [\n")
    with pytest.raises(ConfigError, match=r"team\.yaml: .*not valid YAML at line"):
        load_config(path)


@pytest.mark.parametrize("agents", ["3", "a string", "{id: a}"])
def test_agents_that_are_not_a_list_are_a_config_error(tmp_path, agents):
    path = tmp_path / "team.yaml"
    path.write_text(f"agents: {agents}\n")
    with pytest.raises(ConfigError, match=r"team\.yaml: agents"):
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

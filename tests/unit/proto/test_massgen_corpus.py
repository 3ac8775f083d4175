"""Every config of MassGen's example corpus gets the result written down for it here.

Three corpora are walked, when present:

- ``tests/data/massgen-configs``: MassGen's ``massgen/configs`` at its commit 304dbaa of
  2025-11-15 (215 configs, the YAML files only), kept in the repository so that CI walks
  it too (its README says where it comes from);
- ``../shared/reference/massgen-configs``: 98 team configs of MassGen v0.1.12, beside
  the repository in this project's workspace (a subset of the 215, same contents);
- ``$MASSGEN_CONFIGS``: any MassGen checkout's ``massgen/configs``.
  ``bench/massgen_configs.py`` prints the same figures for any folder.

Each file either loads, or is refused with the reason in ``REFUSED`` (one table for
both: the 98 are the same files under the same names); a loaded file warns exactly as
``WARNED`` says (most say nothing). A change in any file's outcome fails, so widening
or narrowing what loads is always a decision made in this table.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from massgen_proto.config import ConfigError, load_config
from massgen_proto.providers import BACKENDS, BUILTIN_TOOL_KEYS

VENDORED = Path(__file__).resolve().parents[2] / "data" / "massgen-configs"
SHARED = Path(__file__).resolve().parents[4] / "shared" / "reference" / "massgen-configs"
CURRENT = Path(os.environ["MASSGEN_CONFIGS"]) if os.environ.get("MASSGEN_CONFIGS") else None
CORPORA = [root for root in (VENDORED, SHARED, CURRENT) if root is not None and root.is_dir()]
COUNTS: dict[int, tuple[int, int]] = {98: (81, 17), 215: (149, 66)}
"""Files in a corpus -> (loaded, refused)."""


# Not there: a backend that is another agent program, persistent memory.
_CLAUDE_CODE = "backend type 'claude_code' is not supported"
_AG2 = "backend type 'ag2' is not supported"
_MEMORY = "key 'memory' is not supported"
_MEMORY_FS = "remove 'enable_memory_filesystem_mode'"
# MassGen library tools a sandboxed (offline, keyless, headless) custom tool cannot be.
_LIB_DESKTOP = "is not supported: computer use and browser automation"
_LIB_FRAMEWORKS = "is not supported: the lesson planners run another agent framework"
_LIB_CRAWL = "is not supported: the crawl4ai web tools need the network"
_LIB_GITHUB = "is not supported: the GitHub issue analyzer needs the network"
# Commands with root or the user's credentials.
_SUDO = "key 'command_line_docker_enable_sudo' is not supported"
_CREDENTIALS = "key 'command_line_docker_credentials' is not supported"
# MassGen's research features.
_DSPY = "key 'dspy' is not supported"
# Not a team config at all (MassGen's rate-limit table).
_NOT_TEAM = "not a team config"

REFUSED: dict[str, str] = {
    "debug/test_sdk_migration.yaml": _CLAUDE_CODE,
    "skills/skills_existing_filesystem.yaml": _CLAUDE_CODE,
    "tools/code-execution/docker_claude_code.yaml": _CLAUDE_CODE,
    "tools/custom_tools/claude_code_custom_tool_example.yaml": _CLAUDE_CODE,
    "tools/custom_tools/claude_code_custom_tool_example_no_path.yaml": _CLAUDE_CODE,
    "tools/custom_tools/claude_code_custom_tool_with_mcp_example.yaml": _CLAUDE_CODE,
    "tools/custom_tools/claude_code_custom_tool_with_wrong_mcp_example.yaml": _CLAUDE_CODE,
    "tools/custom_tools/claude_code_wrong_custom_tool_with_mcp_example.yaml": _CLAUDE_CODE,
    "tools/filesystem/cc_gpt5_gemini_filesystem.yaml": _CLAUDE_CODE,
    "tools/filesystem/claude_code_context_sharing.yaml": _CLAUDE_CODE,
    "tools/filesystem/claude_code_flash2.5.yaml": _CLAUDE_CODE,
    "tools/filesystem/claude_code_flash2.5_gptoss.yaml": _CLAUDE_CODE,
    "tools/filesystem/claude_code_gpt5nano.yaml": _CLAUDE_CODE,
    "tools/filesystem/claude_code_single.yaml": _CLAUDE_CODE,
    "tools/filesystem/gpt5mini_cc_fs_context_path.yaml": _CLAUDE_CODE,
    "tools/filesystem/multiturn/grok4_gpt5_claude_code_filesystem_multiturn.yaml": _CLAUDE_CODE,
    "tools/filesystem/multiturn/two_claude_code_filesystem_multiturn.yaml": _CLAUDE_CODE,
    "tools/mcp/claude_code_discord_mcp_example.yaml": _CLAUDE_CODE,
    "tools/mcp/claude_code_simple_mcp.yaml": _CLAUDE_CODE,
    "tools/mcp/claude_code_twitter_mcp_example.yaml": _CLAUDE_CODE,
    "tools/mcp/five_agents_travel_mcp_test.yaml": _CLAUDE_CODE,
    "tools/mcp/five_agents_weather_mcp_test.yaml": _CLAUDE_CODE,
    "tools/mcp/gpt5mini_claude_code_discord_mcp_example.yaml": _CLAUDE_CODE,
    "tools/planning/five_agents_discord_mcp_planning_mode.yaml": _CLAUDE_CODE,
    "tools/planning/five_agents_filesystem_mcp_planning_mode.yaml": _CLAUDE_CODE,
    "tools/planning/five_agents_notion_mcp_planning_mode.yaml": _CLAUDE_CODE,
    "tools/planning/five_agents_twitter_mcp_planning_mode.yaml": _CLAUDE_CODE,
    "ag2/ag2_case_study.yaml": _AG2,
    "ag2/ag2_coder.yaml": _AG2,
    "ag2/ag2_coder_case_study.yaml": _AG2,
    "ag2/ag2_gemini.yaml": _AG2,
    "ag2/ag2_groupchat.yaml": _AG2,
    "ag2/ag2_groupchat_gpt.yaml": _AG2,
    "ag2/ag2_single_agent.yaml": _AG2,
    "memory/gpt5mini_gemini_baseline_research_to_implementation.yaml": _MEMORY,
    "memory/gpt5mini_gemini_context_window_management.yaml": _MEMORY,
    "memory/gpt5mini_gemini_research_to_implementation.yaml": _MEMORY,
    "memory/gpt5mini_high_reasoning_gemini.yaml": _MEMORY,
    "memory/single_agent_compression_test.yaml": _MEMORY,
    "tools/mcp/gemini_mcp_filesystem_test_with_claude_code.yaml": _MEMORY,
    "skills/test_memory.yaml": _MEMORY_FS,
    "skills/skills_with_memory.yaml": _MEMORY_FS,  # its skills alone would load
    "tools/code-execution/docker_full_dev_setup.yaml": _SUDO,
    "tools/code-execution/docker_github_readonly.yaml": _CREDENTIALS,
    # Its understand_video maps onto read_multimodal_files; the command sandbox (sudo)
    # and agent_b's claude_code backend keep it out.
    "tools/custom_tools/multimodal_tools/youtube_video_analysis.yaml": _SUDO,
    "tools/code-execution/docker_with_sudo.yaml": _SUDO,
    "tools/custom_tools/claude_computer_use_browser_example.yaml": _LIB_DESKTOP,
    "tools/custom_tools/claude_computer_use_docker_example.yaml": _LIB_DESKTOP,
    "tools/custom_tools/computer_use_browser_example.yaml": _LIB_DESKTOP,
    "tools/custom_tools/computer_use_docker_example.yaml": _LIB_DESKTOP,
    "tools/custom_tools/computer_use_example.yaml": _LIB_DESKTOP,
    "tools/custom_tools/gemini_computer_use_docker_example.yaml": _LIB_DESKTOP,
    "tools/custom_tools/gemini_computer_use_example.yaml": _LIB_DESKTOP,
    "tools/custom_tools/multi_agent_computer_use_example.yaml": _LIB_DESKTOP,
    "tools/custom_tools/simple_browser_automation_example.yaml": _LIB_DESKTOP,
    "tools/custom_tools/interop/ag2_and_langgraph_lesson_planner.yaml": _LIB_FRAMEWORKS,
    "tools/custom_tools/interop/ag2_and_openai_assistant_lesson_planner.yaml": _LIB_FRAMEWORKS,
    "tools/custom_tools/interop/ag2_lesson_planner_example.yaml": _LIB_FRAMEWORKS,
    "tools/custom_tools/interop/agentscope_lesson_planner_example.yaml": _LIB_FRAMEWORKS,
    "tools/custom_tools/interop/langgraph_lesson_planner_example.yaml": _LIB_FRAMEWORKS,
    "tools/custom_tools/interop/openai_assistant_lesson_planner_example.yaml": _LIB_FRAMEWORKS,
    "tools/custom_tools/interop/smolagent_lesson_planner_example.yaml": _LIB_FRAMEWORKS,
    "tools/custom_tools/crawl4ai_example.yaml": _LIB_CRAWL,
    "tools/custom_tools/github_issue_market_analysis.yaml": _LIB_GITHUB,
    "rate_limits/rate_limits.yaml": _NOT_TEAM,
    "basic/multi/three_agents_dspy_enabled.yaml": _DSPY,
}

_WRONG_TOOL = (
    "agents[0].backend.custom_tools[0].function: 'wrong_two_num_tool' is not in the built-in "
    "tool library (two_num_tool): the agent runs without it, as MassGen does when it cannot "
    "load a custom tool"
)
_TASK_PLANNING = (
    "orchestrator.coordination.enable_agent_task_planning: ignored (agents get no task-list "
    "tool; max_tasks_per_plan and task_planning_filesystem_mode with it)"
)

_RESTART_TEST = [
    "orchestrator.coordination.max_orchestration_restarts: ignored (no post-evaluation "
    "restarts: a run ends with the winner's final presentation)",
    "orchestrator.debug_final_answer: ignored (MassGen only hands it to its post-evaluation, "
    "to test restarts; no post-evaluation or restart happens here, see "
    "max_orchestration_restarts)",
]
_DOCKER_IMAGE = (
    "agents[0].backend.command_line_docker_image: ignored (commands run in the gateway's "
    "sandbox on the gateway's own system folders, not in a container image)"
)

_SPEECH_MEANS = (
    "the generate_audio tool (enable_audio_generation): the agent's model writes the text "
    "and the provider's speech API speaks it into the workspace"
)
_MEANS = {
    "text_to_image_generation": "the generate_image tool (enable_image_generation), which "
    "saves the provider's picture into the workspace",
    "understand_image": "the agent's own vision: its read_multimodal_files tool shows "
    "workspace and context-path images to its model",
    "image_to_image_generation": "the edit_image tool (enable_image_generation), which sends "
    "workspace pictures and a prompt to the provider's images edit API and saves the result "
    "in the workspace",
    "understand_audio": "the transcribe_audio tool (enable_audio_understanding): the "
    "provider's transcription API turns a workspace sound into text the agent's model reads",
    "text_to_speech_transcription_generation": _SPEECH_MEANS,
    "text_to_speech_continue_generation": _SPEECH_MEANS,
    "understand_video": "the agent's own vision: its read_multimodal_files tool shows a "
    "workspace or context-path video (MP4, MOV, WebM) to its model, as the video itself "
    "where the model takes video (Gemini, Qwen VL) and as evenly spaced frames otherwise",
    "text_to_video_generation": "the generate_video tool (enable_video_generation), which "
    "has the provider's videos API (OpenAI Sora) make the clip, waits for it, and saves the "
    "MP4 into the workspace",
    "text_to_file_generation": "the write_document tool (enable_file_generation): the "
    "agent's own model writes the text and the gateway renders it as a TXT, MD, PDF, PPTX "
    "or DOCX file in the workspace",
    "understand_file": "the agent's own reading of PDF files: its read_multimodal_files "
    "tool gives workspace and context-path PDFs to its model as file parts (PDF only; "
    "agents read text files with their file tools)",
}


def _mapped(agent: int, *functions: str) -> list[str]:
    """The warnings of agent ``agent`` whose custom_tools[0..] are ``functions``."""
    return [
        f"agents[{agent}].backend.custom_tools[{i}].function: '{f}' (a MassGen multimodal "
        f"tool) maps onto {_MEANS[f]}; no custom tool is offered for it"
        for i, f in enumerate(functions)
    ]


_DRAW = ("text_to_image_generation", "understand_image", "image_to_image_generation")
_SPEAK = (
    "text_to_speech_transcription_generation",
    "understand_audio",
    "text_to_speech_continue_generation",
)
_FILM = ("understand_video", "text_to_video_generation")
_WRITE = ("text_to_file_generation", "understand_file")
_MM_DIR = "tools/custom_tools/multimodal_tools/"
WARNED: dict[str, list[str]] = {
    _MM_DIR + "text_to_image_generation_multi.yaml": _mapped(0, *_DRAW) + _mapped(1, *_DRAW[:2]),
    _MM_DIR + "text_to_image_generation_single.yaml": _mapped(0, *_DRAW),
    _MM_DIR + "text_to_speech_generation_multi.yaml": _mapped(0, *_SPEAK) + _mapped(1, *_SPEAK),
    _MM_DIR + "text_to_speech_generation_single.yaml": _mapped(0, *_SPEAK),
    _MM_DIR + "understand_audio.yaml": _mapped(0, "understand_audio"),
    _MM_DIR + "text_to_file_generation_single.yaml": _mapped(0, *_WRITE),
    _MM_DIR + "text_to_file_generation_multi.yaml": _mapped(0, *_WRITE) + _mapped(1, *_WRITE),
    _MM_DIR + "understand_file.yaml": _mapped(0, "understand_file"),
    _MM_DIR + "understand_video.yaml": _mapped(0, "understand_video"),
    _MM_DIR + "text_to_video_generation_single.yaml": _mapped(0, *_FILM),
    _MM_DIR + "text_to_video_generation_multi.yaml": _mapped(0, *_FILM) + _mapped(1, *_FILM),
    "debug/restart_test_controlled.yaml": _RESTART_TEST,
    "debug/restart_test_controlled_filesystem.yaml": _RESTART_TEST,
    "tools/code-execution/docker_with_resource_limits.yaml": [
        _DOCKER_IMAGE,
        "agents[0].backend.command_line_docker_cpu_limit: ignored (the gateway bounds each "
        "command's CPU seconds and time (its exec_* settings))",
    ],
    "meta/massgen_suggests_to_improve_massgen.yaml": [_TASK_PLANNING],
    "providers/others/grok_single_agent.yaml": [
        "agents[0].backend.extra_body.search_parameters: not sent: xAI retired Live Search; "
        "set enable_web_search: true for xAI's web search tool"
    ],
    "tools/code-execution/docker_custom_image.yaml": [_DOCKER_IMAGE],
    **{
        f"tools/custom_tools/{model}_wrong_custom_tool_with_mcp_example.yaml": [_WRONG_TOOL]
        for model in (
            "claude",
            "gemini",
            "gpt5_nano",
            "gpt_oss",
            "grok3_mini",
            "qwen_api",
            "qwen_local",
        )
    },  # fmt: skip
    "tools/planning/simple_task_planning.yaml": [_TASK_PLANNING],
    "skills/skills_basic.yaml": [_TASK_PLANNING],
    "tools/todo/example_task_todo.yaml": [_TASK_PLANNING],
    "tools/custom_tools/multimodal_tools/understand_image.yaml": [
        "agents[0].backend.custom_tools[0].function: 'understand_image' (a MassGen multimodal "
        "tool) maps onto the agent's own vision: its read_multimodal_files tool shows "
        "workspace and context-path images to its model; no custom tool is offered for it"
    ],
}


def test_the_vendored_corpus_is_there():
    # Kept in the repository: without it CI would walk nothing.
    assert len(_files(VENDORED)) == 215


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml"))


def _cases() -> list[tuple[Path, str]]:
    return [(root, name) for root in CORPORA for name in _files(root)]


@pytest.mark.parametrize("root", CORPORA, ids=str)
def test_the_corpus_is_one_the_table_describes(root: Path):
    files = _files(root)
    assert len(files) in COUNTS, f"{root}: {len(files)} configs; add its counts to COUNTS"
    if len(files) == max(COUNTS):
        assert set(REFUSED) <= set(files), sorted(set(REFUSED) - set(files))
        assert set(WARNED) <= set(files) - set(REFUSED)


@pytest.mark.parametrize(("root", "name"), _cases(), ids=[n for _, n in _cases()])
def test_config_gets_its_expected_result(root: Path, name: str):
    path = root / name
    if name in REFUSED:
        with pytest.raises(ConfigError) as excinfo:
            load_config(path)
        messages = [message for _, message in excinfo.value.problems]
        assert any(REFUSED[name] in message for message in messages), messages
        # Every problem says what is not supported (a refusal, not a typo report).
        if REFUSED[name] != _NOT_TEAM:
            assert all("not supported" in message for message in messages), messages
        assert str(path) in str(excinfo.value)
        return
    config = load_config(path)
    assert config.warnings() == WARNED.get(name, [])
    for agent in config.agents:
        backend = agent.backend
        sent = set(backend.passthrough_params())
        allowed = BACKENDS[backend.type].params | set(BUILTIN_TOOL_KEYS)
        assert sent <= allowed, f"{name}: {agent.id} would send {sorted(sent - allowed)}"


@pytest.mark.parametrize("root", CORPORA, ids=str)
def test_corpus_counts(root: Path):
    files = _files(root)
    refused = [name for name in files if name in REFUSED]
    assert (len(files) - len(refused), len(refused)) == COUNTS[len(files)]

"""Every config of MassGen's example corpus gets the result written down for it here.

The corpus (98 team configs of MassGen v0.1.12) sits beside the repository at
``../shared/reference/massgen-configs``. Each file either loads, or is refused with the
reason in ``REFUSED``; a loaded file warns exactly as ``WARNED`` says (most say
nothing). A change in any file's outcome fails, so widening or narrowing what loads is
always a decision made in this table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from massgen_proto.config import ConfigError, load_config
from massgen_proto.providers import BACKENDS, BUILTIN_TOOL_KEYS

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "reference" / "massgen-configs"
CORPUS_SIZE = 98

pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"the MassGen config corpus is not at {CORPUS}"
)

_CLAUDE_CODE = "backend type 'claude_code' is not supported"
_UPLOAD = "key 'upload_files' is not supported"

REFUSED: dict[str, str] = {
    # Multimodal-only: generated images/audio, files uploaded to the provider.
    "basic/multi/gpt4o_audio_generation.yaml": "key 'enable_audio_generation' is not supported",
    "basic/multi/gpt4o_image_generation.yaml": "key 'enable_image_generation' is not supported",
    "basic/multi/gpt5nano_image_understanding.yaml": _UPLOAD,
    "basic/single/single_gpt4o_audio_generation.yaml": "key 'enable_audio_generation' is not "
    "supported",
    "basic/single/single_gpt4o_image_generation.yaml": "key 'enable_image_generation' is not "
    "supported",
    "basic/single/single_gpt5nano_file_search.yaml": _UPLOAD,
    "basic/single/single_gpt5nano_image_understanding.yaml": _UPLOAD,
    "basic/single/single_openrouter_audio_understanding.yaml": _UPLOAD,
    "basic/single/single_qwen_video_understanding.yaml": _UPLOAD,
    # Question paraphrasing with DSPy.
    "basic/multi/three_agents_dspy_enabled.yaml": "key 'dspy' is not supported",
    # Persistent memory.
    "tools/mcp/gemini_mcp_filesystem_test_with_claude_code.yaml": "key 'memory' is not supported",
    # The Claude Code agent.
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
}

WARNED: dict[str, list[str]] = {
    "providers/others/grok_single_agent.yaml": [
        "agents[0].backend.extra_body.search_parameters: not sent: xAI retired Live Search; "
        "set enable_web_search: true for xAI's web search tool"
    ],
}


def _files() -> list[str]:
    return sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.yaml"))


def test_the_corpus_is_the_one_the_table_describes():
    files = _files()
    assert len(files) == CORPUS_SIZE
    assert set(REFUSED) <= set(files), sorted(set(REFUSED) - set(files))
    assert set(WARNED) <= set(files) - set(REFUSED)


@pytest.mark.parametrize("name", _files() if CORPUS.is_dir() else [])
def test_config_gets_its_expected_result(name: str):
    path = CORPUS / name
    if name in REFUSED:
        with pytest.raises(ConfigError) as excinfo:
            load_config(path)
        messages = [message for _, message in excinfo.value.problems]
        assert any(REFUSED[name] in message for message in messages), messages
        # Every problem says what is not supported (a refusal, not a typo report).
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


def test_corpus_counts():
    loaded = [name for name in _files() if name not in REFUSED]
    assert (len(loaded), len(REFUSED)) == (72, 26)

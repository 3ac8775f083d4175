"""MassGen's multimodal custom tools (``massgen/tool/_multimodal_tools/``): each maps
onto the project's own way of doing the same work, with a warning, or is refused naming
the key and the function."""

from __future__ import annotations

import pytest
from massgen_gateway.custom_tools import specs
from massgen_proto.config import ConfigError, parse_config
from massgen_proto.config.tool_library import COUNTERPARTS

FOLDER = "massgen/tool/_multimodal_tools"


def tool(function: str) -> dict:
    return {"name": [function], "category": "multimodal", "path": f"{FOLDER}/{function}.py",
            "function": [function]}  # fmt: skip


def team(*functions: str, **backend: object) -> dict:
    tools = [tool(f) for f in functions]
    return {"agents": [{"id": "artist", "backend": {
        "type": "openai", "model": "gpt-4o", "cwd": "ws", "custom_tools": tools, **backend}}]}  # fmt: skip


def refusal(config: dict) -> tuple[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    (found,) = caught.value.problems
    return found


def test_understand_image_maps_onto_the_agents_own_vision():
    config = parse_config(team("understand_image"))
    assert config.warnings() == [
        "agents[0].backend.custom_tools[0].function: 'understand_image' (a MassGen "
        "multimodal tool) maps onto the agent's own vision: its read_multimodal_files tool "
        "shows workspace and context-path images to its model; no custom tool is offered "
        "for it"
    ]
    backend = config.agents[0].backend
    assert not (backend.enable_image_generation or backend.enable_audio_generation)
    # The gateway offers no custom tool for it (nor tries to import MassGen's file).
    assert specs(backend.custom_tools, 0, "/nowhere") == []


@pytest.mark.parametrize(
    ("function", "flag"),
    [
        ("text_to_image_generation", "enable_image_generation"),
        ("text_to_speech_transcription_generation", "enable_audio_generation"),
        ("text_to_speech_continue_generation", "enable_audio_generation"),
        ("image_to_image_generation", "enable_image_generation"),
        ("understand_audio", "enable_audio_understanding"),
        ("text_to_file_generation", "enable_file_generation"),
        ("text_to_video_generation", "enable_video_generation"),
    ],
)
def test_generation_tools_turn_their_counterpart_on(function: str, flag: str):
    config = parse_config(team(function))
    backend = config.agents[0].backend
    assert getattr(backend, flag) is True
    tool_name = COUNTERPARTS[function].tool
    (warning,) = config.warnings()
    assert f"'{function}' (a MassGen multimodal tool) maps onto the {tool_name} tool" in warning
    assert specs(backend.custom_tools, 0, "/nowhere") == []


def test_a_mapped_tool_leaves_the_agents_other_custom_tools():
    config = parse_config(team("understand_image", custom_tools=[
        tool("understand_image"), {"name": "add", "function": "two_num_tool"}]))  # fmt: skip
    served = specs(config.agents[0].backend.custom_tools, 0, "/nowhere")
    assert [(t.name, t.function) for t in served] == [("add", "two_num_tool")]


def test_an_unknown_multimodal_function_gets_the_folders_reason():
    where, message = refusal(team("understand_hologram"))
    assert where == "agents[0].backend.custom_tools[0]"
    assert "'understand_hologram'" in message and "MassGen's multimodal tools" in message


def test_understand_image_needs_a_model_that_takes_images():
    where, message = refusal(team("understand_image", model="gpt-3.5-turbo"))
    assert where == "agents[0]"
    assert message.startswith("backend.custom_tools[0].function: agent 'artist': ")
    assert "'gpt-3.5-turbo'" in message and "does not take images" in message


def test_image_generation_on_a_provider_without_an_images_api_is_refused():
    where, message = refusal(
        team("text_to_image_generation", type="claude", model="claude-sonnet-4-5")
    )
    assert where == "agents[0]"
    assert message.startswith("backend.enable_image_generation: agent 'artist': ")
    assert "no images API" in message


def test_audio_understanding_on_a_provider_without_a_transcription_api_is_refused():
    where, message = refusal(team("understand_audio", type="claude", model="claude-sonnet-4-5"))
    assert where == "agents[0]"
    assert message.startswith("backend.enable_audio_understanding: agent 'artist': ")
    assert "no transcription API" in message and "openai" in message


def test_understand_file_maps_onto_reading_pdfs_and_needs_a_model_that_reads_them():
    config = parse_config(team("understand_file"))
    (warning,) = config.warnings()
    assert "'understand_file' (a MassGen multimodal tool) maps onto the agent's own " in warning
    assert "read_multimodal_files" in warning and "PDF only" in warning
    where, message = refusal(team("understand_file", model="gpt-3.5-turbo"))
    assert where == "agents[0]"
    assert message.startswith("backend.custom_tools[0].function: agent 'artist': ")
    assert "does not read PDFs" in message and "supports_pdf_input" in message

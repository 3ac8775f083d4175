"""Video keys of a MassGen config: ``video_path`` uploads, ``enable_video_generation``,
MassGen's ``understand_video`` / ``text_to_video_generation`` tools, and how each model
is shown a video (``video_inputs``)."""

from __future__ import annotations

import pytest
from massgen_proto.config import ConfigError, parse_config
from massgen_proto.video_inputs import video_input


def agent(**backend: object) -> dict:
    return {"agents": [{"id": "film", "backend": {"type": "openai", "model": "gpt-4o", **backend}}]}


def problem(config: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    ((path, message),) = caught.value.problems
    assert path == "agents[0]"
    return message


@pytest.mark.parametrize(
    ("backend_type", "model", "shown"),
    [
        ("gemini", "gemini-2.5-flash", "file"),  # litellm: inline data
        ("chatcompletion", "qwen3-vl-30b-a3b-thinking", "video_url"),
        ("qwen", "qwen3-vl-plus", "video_url"),
        ("vllm", "Qwen/Qwen2.5-VL-7B-Instruct", "video_url"),
        ("openai", "gpt-4o", "frames"),
        ("claude", "claude-sonnet-4-5", "frames"),
        ("chatcompletion", "llama-3-8b", None),
    ],
)
def test_each_model_is_shown_a_video_its_own_way(backend_type, model, shown):
    assert video_input(backend_type, model) == shown


def test_video_uploads_load_for_models_that_see_video_or_frames():
    for backend in ({"type": "openai", "model": "gpt-4o"},
                    {"type": "chatcompletion", "model": "qwen3-vl-30b-a3b-thinking",
                     "base_url": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"}):  # fmt: skip
        config = parse_config(agent(**backend, upload_files=[{"video_path": "clips/a.mp4"}]))
        (upload,) = config.agents[0].backend.upload_files
        assert (upload.kind, upload.source) == ("video", "clips/a.mp4")
        assert config.uses_tools(config.agents[0])  # the gateway holds the file


def test_a_video_upload_is_refused_for_a_model_without_vision_or_by_url():
    text_only = agent(type="chatcompletion", model="llama-3-8b", base_url="http://h/v1",
                      upload_files=[{"video_path": "a.mp4"}])  # fmt: skip
    message = problem(text_only)
    assert message.startswith("backend.upload_files[0].video_path: agent 'film': ")
    assert "video inputs are not supported by model 'llama-3-8b'" in message
    message = problem(agent(upload_files=[{"video_path": "https://example.org/a.mp4"}]))
    assert "video inputs by URL are not supported" in message and "local path" in message


def test_video_generation_needs_a_provider_with_a_videos_api():
    assert (
        parse_config(agent(enable_video_generation=True)).agents[0].backend.enable_video_generation
    )
    message = problem(agent(type="claude", model="claude-sonnet-4-5", enable_video_generation=True))
    assert message.startswith("backend.enable_video_generation: agent 'film': ")
    assert "has no videos API that litellm calls here (supported: azure_openai, openai)" in message


def test_massgens_video_tools_map_onto_the_projects_with_a_warning():
    tools = [{"name": ["understand_video"], "category": "multimodal",
              "path": "massgen/tool/_multimodal_tools/understand_video.py",
              "function": ["understand_video"]},
             {"name": ["text_to_video_generation"], "category": "multimodal",
              "path": "massgen/tool/_multimodal_tools/text_to_video_generation.py",
              "function": ["text_to_video_generation"]}]  # fmt: skip
    config = parse_config(agent(custom_tools=tools))
    assert config.agents[0].backend.enable_video_generation  # the counterpart's switch
    first, second = config.warnings()
    assert "'understand_video' (a MassGen multimodal tool) maps onto the agent's own" in first
    assert "read_multimodal_files" in first
    assert "maps onto the generate_video tool (enable_video_generation)" in second
    # On a backend without a videos API the mapped tool is refused, naming the key.
    message = problem(agent(type="claude", model="claude-sonnet-4-5", custom_tools=tools[1:]))
    assert "enable_video_generation" in message and "no videos API" in message

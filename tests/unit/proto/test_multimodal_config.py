"""MassGen's multimodal backend keys: what loads, and the errors that name agent and key."""

from __future__ import annotations

import pytest
from massgen_proto.config import ConfigError, parse_config
from massgen_proto.media_models import accepts, litellm_entry


def team(**backend: object) -> dict:
    return {
        "agents": [{"id": "viewer", "backend": {"type": "openai", "model": "gpt-4o", **backend}}]
    }


def problems(config: dict) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    return caught.value.problems


def test_image_uploads_load_for_a_vision_model():
    config = parse_config(team(upload_files=[
        {"image_path": "pics/cat.png"}, {"image_path": "https://example.org/dog.jpg"}]))  # fmt: skip
    uploads = config.agents[0].backend.upload_files
    assert [(u.kind, u.source, u.is_url) for u in uploads] == [
        ("image", "pics/cat.png", False), ("image", "https://example.org/dog.jpg", True)]  # fmt: skip
    assert config.uses_tools(config.agents[0])  # the gateway holds the files
    assert "upload_files" not in config.agents[0].backend.passthrough_params()
    assert config.agents[0].backend.media_max_file_size_mb == 20


def test_a_model_without_vision_is_refused_naming_agent_and_key():
    found = problems(team(model="gpt-3.5-turbo", upload_files=[{"image_path": "cat.png"}]))
    assert len(found) == 1
    path, message = found[0]
    assert path == "agents[0]"
    assert message.startswith("backend.upload_files[0].image_path: agent 'viewer': ")
    assert "'gpt-3.5-turbo'" in message and "does not take images" in message


def test_unknown_self_hosted_models_need_a_vision_family_name():
    base = {"type": "vllm", "base_url": "http://gpu:8000/v1"}
    ok = {"agents": [{"id": "a", "backend": {**base, "model": "Qwen/Qwen2.5-VL-7B-Instruct",
                                             "upload_files": [{"image_path": "x.png"}]}}]}  # fmt: skip
    parse_config(ok)
    coder = {"agents": [{"id": "a", "backend": {**base, "model": "Qwen/Qwen2.5-Coder-7B",
                                                "upload_files": [{"image_path": "x.png"}]}}]}  # fmt: skip
    assert "does not take images" in problems(coder)[0][1]


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"audio_path": "a.wav"}, "audio inputs are not supported"),
        ({"video_path": "https://example.org/v.mp4"}, "video inputs by URL are not supported"),
    ],
)
def test_other_upload_kinds_are_refused_with_the_reason(entry, words):
    path, message = problems(team(upload_files=[entry]))[0]
    assert path == "agents[0]" and words in message
    assert message.startswith(f"backend.upload_files[0].{next(iter(entry))}: agent 'viewer'")


def test_audio_uploads_load_for_a_model_that_takes_audio():
    config = parse_config(team(model="gpt-4o-audio-preview", upload_files=[
        {"audio_path": "talk.wav"}, {"image_path": "cat.png"}]))  # fmt: skip
    uploads = config.agents[0].backend.upload_files
    assert [(u.kind, u.source) for u in uploads] == [("audio", "talk.wav"), ("image", "cat.png")]
    # Gemini through an aggregator: the family table answers (litellm does not list it).
    parse_config(team(type="chatcompletion", base_url="http://127.0.0.1:9/v1",
                      model="google/gemini-2.5-flash", upload_files=[{"audio_path": "a.mp3"}]))  # fmt: skip


def test_audio_is_refused_for_a_model_without_audio_by_path_or_url():
    for source in ("a.wav", "https://cdn.example.org/alloy.wav"):
        path, message = problems(team(upload_files=[{"audio_path": source}]))[0]
        assert message.startswith("backend.upload_files[0].audio_path: agent 'viewer': ")
        assert "audio inputs are not supported by model 'gpt-4o'" in message
    # By URL for a model that takes audio: the gateway fetches it.
    url = "https://cdn.example.org/alloy.wav"
    (upload,) = parse_config(team(model="gpt-4o-audio-preview", upload_files=[
        {"audio_path": url}])).agents[0].backend.upload_files  # fmt: skip
    assert (upload.kind, upload.is_url) == ("audio", True)


def test_documents_go_to_file_search_on_openai_and_by_url_nowhere_else():
    # OpenAI: a vector store the file_search tool reads, whatever the model reads itself.
    url = "https://cdn.example.org/paper.pdf"
    for model in ("gpt-5-nano", "gpt-3.5-turbo"):
        parse_config(team(model=model, upload_files=[{"file_path": url}, {"file_path": "a.pdf"}]))
    claude = {"agents": [{"id": "reader", "backend": {
        "type": "claude", "model": "claude-sonnet-4-5", "upload_files": [{"file_path": url}]}}]}  # fmt: skip
    path, message = problems(claude)[0]
    assert message.startswith("backend.upload_files[0].file_path: agent 'reader': ")
    assert "file search (vector stores)" in message and "'claude'" in message
    assert "supported: openai" in message


def test_pdf_uploads_load_for_a_model_that_reads_pdfs_and_are_refused_otherwise():
    config = parse_config(team(upload_files=[{"file_path": "papers/tumix.pdf"}]))
    (upload,) = config.agents[0].backend.upload_files
    assert (upload.kind, upload.source, upload.is_url) == ("file", "papers/tumix.pdf", False)
    plain = team(type="chatcompletion", base_url="http://127.0.0.1:9/v1", model="gpt-3.5-turbo",
                 upload_files=[{"file_path": "a.pdf"}])  # fmt: skip
    path, message = problems(plain)[0]
    assert message.startswith("backend.upload_files[0].file_path: agent 'viewer': ")
    assert "'gpt-3.5-turbo'" in message and "does not read PDF files" in message


def test_an_upload_entry_names_exactly_one_file():
    path, message = problems(team(upload_files=[{"image_path": "a.png", "audio_path": "b.wav"}]))[0]
    assert path == "agents[0].backend.upload_files[0]"
    assert "exactly one of" in message and "image_path, audio_path" in message
    assert problems(team(upload_files=[{"image_url": "x"}]))[0][0].endswith("image_url")
    assert parse_config(team(upload_files=None)).agents[0].backend.upload_files == []


def test_image_generation_needs_a_provider_with_an_images_api():
    config = parse_config(team(enable_image_generation=True, enable_audio_generation=True))
    backend = config.agents[0].backend
    assert backend.enable_image_generation and backend.enable_audio_generation
    assert config.uses_tools(config.agents[0])
    assert "enable_image_generation" not in backend.passthrough_params()
    claude = {"agents": [{"id": "c", "backend": {"type": "claude", "model": "claude-sonnet-4-5",
                                                 "enable_image_generation": True}}]}  # fmt: skip
    path, message = problems(claude)[0]
    assert path == "agents[0]"
    assert message.startswith("backend.enable_image_generation: agent 'c': backend type 'claude'")
    assert "supported: azure_openai, openai" in message


def test_document_generation_is_a_switch_of_any_backend():
    # The gateway renders the model's text itself: no provider API is needed.
    for backend in ({}, {"type": "claude", "model": "claude-sonnet-4-5"}):
        config = parse_config(team(enable_file_generation=True, **backend))
        agent = config.agents[0]
        assert agent.backend.enable_file_generation and config.uses_tools(agent)
        assert "enable_file_generation" not in agent.backend.passthrough_params()


def test_size_limit_must_be_positive():
    path, _ = problems(team(media_max_file_size_mb=0))[0]
    assert path == "agents[0].backend.media_max_file_size_mb"


def test_vision_answers_come_from_litellms_table_then_the_families():
    # litellm is pinned in the workspace: its table must be read, not skipped.
    assert litellm_entry("openai", "gpt-4o") is not None
    assert accepts("openai", "gpt-4o", "image")
    assert not accepts("openai", "gpt-3.5-turbo", "image")  # listed, without vision
    assert accepts("gemini", "gemini-2.5-flash", "image")
    assert accepts("claude", "claude-3-5-haiku-latest", "image")  # not listed: a family
    assert accepts("openrouter", "google/gemini-2.5-flash", "image")
    assert not accepts("local", "qwen2.5-coder-0.5b", "image")
    assert accepts("chatcompletion", "llava-v1.6-mistral-7b", "image")

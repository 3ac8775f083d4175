"""Workspace files sent to a provider's media APIs or to the model, through the whole
stack:

- ``edit_image`` (offered with ``enable_image_generation``): the pictures the model
  names, read through the gateway, and its prompt reach ``/v1/images/edits`` as a
  multipart form; the result is saved in the agent's workspace;
- ``transcribe_audio`` (``enable_audio_understanding``): the sound reaches
  ``/v1/audio/transcriptions`` as a multipart form and the transcript comes back to the
  model as the tool result; a path outside the agent's roots is refused by the gateway;
- PDFs (``upload_files`` ``file_path``, and ``read_multimodal_files`` of a PDF) reach a
  model that reads them as ``file`` parts carrying the document inline.

The fake OpenAI server parses each form and the tests assert what it received.
"""

from __future__ import annotations

import pytest

from tests.integration.gateway.test_media import data_url, png
from tests.support.fakes.openai_server import answer, text, tool_call, vote
from tests.support.sample_files import tiny_wav

pytestmark = pytest.mark.timeout(120)


async def test_edit_image_sends_the_pictures_and_prompt_and_saves_the_result(
    stack, gateway, openai_worker, tmp_path
):
    shots = tmp_path / "shots"
    shots.mkdir()
    cat, hat = png(40, 30, seed=1), png(20, 20, seed=2)
    (shots / "cat.png").write_bytes(cat)
    (shots / "hat.png").write_bytes(hat)
    edited = png(48, 48, seed=3)
    stack.fake.script_media("edits", "gpt-image-1", [edited])
    paths = [str(shots / "cat.png"), str(shots / "hat.png")]
    stack.fake.script("gpt-4o", [
        tool_call("edit_image", {"paths": paths, "prompt": "the cat wears the hat",
                                 "path": "art/cat_hat"}),
        answer("agent1/art/cat_hat.png"), vote("agent1"), text("agent1/art/cat_hat.png"),
    ])  # fmt: skip
    config = stack.team(["gpt-4o"])
    config["agents"][0]["backend"].update(type="openai", cwd="ws", enable_image_generation=True)
    config["orchestrator"]["context_paths"] = [{"path": str(shots), "permission": "read"}]
    summary = await stack.run("Put the hat on the cat.", config)
    assert summary.status == "completed", summary
    stack.fake.assert_complete()

    offered = {t["function"]["name"] for t in stack.fake.requests_for("gpt-4o")[0].tools}
    assert {"generate_image", "edit_image"} <= offered and "transcribe_audio" not in offered
    [(route, form)] = stack.fake.media_requests
    assert route == "edits"
    assert form["model"] == "gpt-image-1" and form["prompt"] == "the cat wears the hat"
    assert [data for _, data in form["image[]"]] == [cat, hat]  # in the model's order
    result = stack.fake.requests_for("gpt-4o")[1].messages[-1]["content"]
    assert result == (
        f"Saved the generated image to art/cat_hat.png in your workspace ({len(edited)} "
        "bytes, image/png). In your answer, refer to it as agent1/art/cat_hat.png."
    )
    run_dir = tmp_path / "runs" / stack.events[0].run_id
    assert (run_dir / "ws" / "art" / "cat_hat.png").read_bytes() == edited


async def test_transcribe_audio_returns_the_transcript_of_a_workspace_sound(
    stack, gateway, openai_worker, tmp_path
):
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    tone = tiny_wav(1.5, rate=16000)
    (sounds / "memo.wav").write_bytes(tone)
    (sounds / "pic.png").write_bytes(png(8, 8))
    stack.fake.script_media("transcriptions", "whisper-1", [b"Buy milk at noon."])
    stack.fake.script("gpt-4o", [
        tool_call("transcribe_audio", {"path": str(sounds / "memo.wav")}),
        tool_call("transcribe_audio", {"path": "/etc/hostname"}),
        tool_call("transcribe_audio", {"path": str(sounds / "pic.png")}),
        answer("Buy milk."), vote("agent1"), text("Buy milk."),
    ])  # fmt: skip
    config = stack.team(["gpt-4o"])
    config["agents"][0]["backend"].update(type="openai", enable_audio_understanding=True)
    config["orchestrator"]["context_paths"] = [{"path": str(sounds), "permission": "read"}]
    summary = await stack.run("What does the memo say?", config)
    assert summary.status == "completed", summary
    stack.fake.assert_complete()

    requests = stack.fake.requests_for("gpt-4o")
    offered = {t["function"]["name"] for t in requests[0].tools}
    assert "transcribe_audio" in offered and "edit_image" not in offered
    [(route, form)] = stack.fake.media_requests  # the refused paths never reached it
    assert route == "transcriptions" and form["model"] == "whisper-1"
    assert form["file"] == [("memo.wav", tone)]
    assert requests[1].messages[-1]["content"] == (
        f"Transcript of {sounds / 'memo.wav'}:\nBuy milk at noon."
    )
    denied = requests[2].messages[-1]["content"]
    assert denied.startswith("Error: ") and "/etc/hostname" in denied
    not_sound = requests[3].messages[-1]["content"]
    assert not_sound.startswith("Error: ") and "not a sound file (image/png)" in not_sound


def pdf(text: str) -> bytes:
    """A small one-page PDF (real structure; the fakes do not render it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    body = b"%PDF-1.4\n"
    for number, obj in enumerate(objects, 1):
        body += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    return body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"


def file_parts(message: dict) -> list[dict]:
    content = message.get("content")
    return (
        [p["file"] for p in content if p.get("type") == "file"] if isinstance(content, list) else []
    )


async def test_pdfs_reach_the_model_as_file_parts_from_uploads_and_read_multimodal_files(
    stack, gateway, tmp_path
):
    docs = tmp_path / "docs"
    docs.mkdir()
    report, paper = pdf("quarterly report"), pdf("TUMIX paper")
    (docs / "report.pdf").write_bytes(report)
    (docs / "paper.pdf").write_bytes(paper)
    stack.fake.script("gpt-4o", [
        tool_call("mcp__workspace__read_multimodal_files", {"paths": [str(docs / "paper.pdf")]}),
        answer("Both read."), vote("agent1"), text("Both read."),
    ])  # fmt: skip
    config = stack.team(["gpt-4o"])
    config["agents"][0]["backend"]["upload_files"] = [{"file_path": str(docs / "report.pdf")}]
    config["orchestrator"]["context_paths"] = [{"path": str(docs), "permission": "read"}]
    summary = await stack.run("Summarise the documents.", config)
    assert summary.status == "completed", summary
    stack.fake.assert_complete()

    first, second = stack.fake.requests_for("gpt-4o")[:2]
    uploaded = {"filename": "report.pdf", "file_data": data_url(report, "application/pdf")}
    task = [m for m in first.messages if m["role"] == "user"][-1]
    assert file_parts(task) == [uploaded]
    result, shown = second.messages[-2], second.messages[-1]
    assert result["role"] == "tool" and result["content"].startswith("Showing 1 file(s)")
    assert "(application/pdf, " in result["content"]
    assert shown["content"][0]["text"] == f"The files you asked to see: {docs / 'paper.pdf'}"
    assert file_parts(shown) == [
        {"filename": "paper.pdf", "file_data": data_url(paper, "application/pdf")}
    ]

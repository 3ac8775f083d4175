"""``write_document`` through the real gateway on a real nats-server.

Each format is written into the agent's workspace and opened with its reader (pypdf
extracts the PDF's text, python-pptx loads the slides, python-docx the paragraphs);
the documents are then listed and served as the run's artifacts (``GATEWAY_RUN_FILES``).
Hostile calls (a path out of the workspace, an unknown format, a suffix that lies,
too much text, a file over the size limit) are refused with the reason, and nothing is
written anywhere.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from massgen_gateway.documents import MAX_CONTENT_CHARS
from massgen_kit.keepalive import request_with_keepalive
from massgen_proto import subjects
from massgen_proto.media import FileChunk, FilesReplyAdapter, RunFileRequest, RunFilesRequest
from massgen_proto.messages import ErrorReply

pytestmark = pytest.mark.timeout(120)

WRITE = "mcp__workspace__write_document"
REPORT = """# Quarterly report

Revenue grew **twelve** percent.

## Highlights
- New customers in Lisbon
  - three of them schools
1. Hire two engineers
---
# Next steps
- Ship the document tool
"""


def team(**backend) -> dict:
    return {"agents": [
        {"id": "a1", "backend": {"type": "openai", "model": "gpt-4o", "cwd": "w1",
                                 "enable_file_generation": True, **backend}},
        {"id": "a2", "backend": {"type": "openai", "model": "gpt-4o", "cwd": "w2"}},
    ]}  # fmt: skip


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


async def test_every_format_is_written_and_opens_with_its_reader(client, tmp_path):
    await client.put_run("run-doc", team())
    listing = await client.list("run-doc")
    names = {t["function"]["name"] for t in listing.tools}
    assert WRITE in names
    other = await client.list("run-doc", "a2", "agent2")
    assert WRITE not in {t["function"]["name"] for t in other.tools}

    workspace = tmp_path / "runs" / "run-doc" / "w1"
    for fmt in ("txt", "md", "pdf", "pptx", "docx"):
        path = f"docs/report.{fmt}" if fmt != "pdf" else "docs/report"  # suffix added
        result = await client.call("run-doc", WRITE, {"path": path, "format": fmt,
                                                      "content": REPORT})  # fmt: skip
        assert not result.is_error, result.content
        assert result.content.startswith(f"created docs/report.{fmt} ({fmt}, ")

    assert (workspace / "docs" / "report.txt").read_text() == REPORT
    assert (workspace / "docs" / "report.md").read_text() == REPORT
    pypdf = pytest.importorskip("pypdf")
    pdf = pypdf.PdfReader(io.BytesIO((workspace / "docs" / "report.pdf").read_bytes()))
    extracted = " ".join(page.extract_text() for page in pdf.pages)
    assert "Quarterly report" in extracted and "Revenue grew twelve percent." in extracted
    assert "- New customers in Lisbon" in extracted and "1. Hire two engineers" in extracted
    assert "**" not in extracted and "---" not in extracted

    from docx import Document
    from pptx import Presentation

    deck = Presentation(str(workspace / "docs" / "report.pptx"))
    titles = [slide.shapes.title.text for slide in deck.slides]
    assert titles == ["Quarterly report", "Next steps"]
    body = [p.text for p in deck.slides[0].placeholders[1].text_frame.paragraphs]
    assert "New customers in Lisbon" in body and "Revenue grew twelve percent." in body
    document = Document(str(workspace / "docs" / "report.docx"))
    styled = [(p.style.name, p.text) for p in document.paragraphs]
    assert ("Heading 1", "Quarterly report") in styled
    assert ("List Bullet 2", "three of them schools") in styled
    assert ("List Number", "Hire two engineers") in styled

    # A second call overwrites, and says so.
    again = await client.call("run-doc", WRITE, {"path": "docs/report.md", "format": "md",
                                                 "content": "# v2"})  # fmt: skip
    assert again.content.startswith("overwrote docs/report.md")
    assert (workspace / "docs" / "report.md").read_text() == "# v2"


async def run_files(client, request) -> object:
    reply = await request_with_keepalive(
        client.nc, subjects.GATEWAY_RUN_FILES, request.model_dump_json().encode(), timeout=30
    )
    return FilesReplyAdapter.validate_json(reply)


async def test_documents_are_the_runs_artifacts_for_a_generating_agent_only(client, tmp_path):
    await client.put_run("run-art", team(), winner="agent1")
    for fmt in ("pdf", "docx", "md"):
        await client.call("run-art", WRITE, {"path": f"out/r.{fmt}", "format": fmt,
                                             "content": REPORT})  # fmt: skip
    run_dir = tmp_path / "runs" / "run-art"
    # a2 (no file generation) has a Markdown file too: not an artifact of the run.
    (run_dir / "w2").mkdir(parents=True)
    (run_dir / "w2" / "notes.md").write_text("# scratch")
    # The gateway snapshots workspaces at the end of a turn; the run's end keeps the
    # winner's as its final workspace. Both, as they would be:
    for label, workspace in (("agent1", "w1"), ("agent2", "w2")):
        (run_dir / "reference").mkdir(exist_ok=True)
        (run_dir / workspace).rename(run_dir / "reference" / label)
    # A binary file named like a document is not one.
    (run_dir / "reference" / "agent1" / "out" / "fake.docx").write_bytes(b"\x00\x01zip?")

    listing = await run_files(client, RunFilesRequest(run_id="run-art"))
    listed = {f.path: f.mime for f in listing.files}
    assert listed == {
        "agent1/out/r.pdf": "application/pdf",
        "agent1/out/r.docx": (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        ),
        "agent1/out/r.md": "text/markdown",
    }
    chunk = await run_files(client, RunFileRequest(run_id="run-art", path="agent1/out/r.md"))
    assert isinstance(chunk, FileChunk) and base64.b64decode(chunk.data).decode() == REPORT
    hidden = await run_files(client, RunFileRequest(run_id="run-art", path="agent2/notes.md"))
    assert isinstance(hidden, ErrorReply)
    fake = await run_files(client, RunFileRequest(run_id="run-art", path="agent1/out/fake.docx"))
    assert isinstance(fake, ErrorReply) and "not a supported media file" in fake.error


async def test_hostile_calls_are_refused_and_write_nothing(client, tmp_path):
    await client.put_run("run-bad", team(media_max_file_size_mb=0.01))
    root = tmp_path / "runs"
    before = files_in(tmp_path)

    async def call(**arguments):
        return await client.call("run-bad", WRITE, {"format": "md", "content": "x", **arguments})

    escape = await call(path="../../escape.md")
    assert escape.denied and "escape.md" in escape.content
    absolute = await call(path=str(tmp_path / "outside.md"))
    assert absolute.denied and "outside_roots" in absolute.content
    unknown = await call(path="page.html", format="html")
    assert unknown.is_error and "unknown format 'html': use one of txt, md, pdf, pptx, docx" in (
        unknown.content
    )
    lying = await call(path="report.pdf", format="docx")
    assert lying.is_error and "ends in '.pdf' but the format is 'docx'" in lying.content
    huge = await call(path="huge.md", content="y" * (MAX_CONTENT_CHARS + 1))
    assert huge.is_error and f"over the limit of {MAX_CONTENT_CHARS}" in huge.content
    # Within the text limit, but the rendered file is over media_max_file_size_mb.
    big = await call(path="big.txt", format="txt", content="z" * 20_000)
    assert big.is_error and "over the limit of 0.0 MB (backend.media_max_file_size_mb)" in (
        big.content
    )
    no_path = await call(path="")
    assert no_path.is_error and "'path' must be a non-empty file path" in no_path.content
    other = await client.call("run-bad", WRITE, {"path": "x.md", "format": "md", "content": "x"},
                              "a2", "agent2")  # fmt: skip
    assert other.is_error and "not available" in other.content

    assert files_in(tmp_path) == before  # nothing written, in the workspaces or outside
    assert not (root / "run-bad" / "w1" / "big.txt").exists()

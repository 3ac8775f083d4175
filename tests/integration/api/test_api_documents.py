"""A run's documents (``write_document``) over HTTP, like its pictures: listed by
``GET /v1/runs/{id}/files`` with their types and served with them, to their tenant only.

Real uvicorn, nats-server, orchestrator, openai worker, gateway and the scripted fake
model, whose ``write_document`` calls the gateway renders into the agent's workspace.
"""

from __future__ import annotations

import io

import pytest

from tests.integration.api.test_api_files import api, finish  # noqa: F401 - the fixture
from tests.support.api_stack import ALICE, BOB
from tests.support.fakes.openai_server import answer, text, tool_call, vote

pytestmark = pytest.mark.timeout(120)

WRITE = "mcp__workspace__write_document"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def test_written_documents_are_listed_and_served_with_their_types(api):  # noqa: F811
    notes = "# Notes\n\n- first point\n"
    api.fake.script("gpt-4o", [
        tool_call(WRITE, {"path": "out/plan", "format": "docx", "content": "# Plan\n\nShip it."}),
        tool_call(WRITE, {"path": "out/notes.md", "format": "md", "content": notes}),
        answer("See agent1/out/plan.docx."), vote("agent1"), text("agent1/out/plan.docx"),
    ])  # fmt: skip
    config = api.config(["gpt-4o"])
    config["agents"][0]["backend"].update(type="openai", cwd="ws", enable_file_generation=True)
    with api.client(ALICE) as alice, api.client(BOB) as bob:
        created = alice.post("/v1/runs", json={"question": "Plan", "config": config})
        assert created.status_code == 201, created.text
        run = finish(alice, created.json()["id"])
        assert run["status"] == "completed", run
        run_id = run["id"]

        listed = alice.get(f"/v1/runs/{run_id}/files").json()["files"]
        assert {(f["path"], f["mime"]) for f in listed} == {
            ("agent1/out/plan.docx", DOCX), ("agent1/out/notes.md", "text/markdown"),
        }  # fmt: skip

        got = alice.get(f"/v1/runs/{run_id}/files/agent1/out/plan.docx")
        assert got.status_code == 200 and got.headers["content-type"] == DOCX
        from docx import Document

        paragraphs = [(p.style.name, p.text) for p in Document(io.BytesIO(got.content)).paragraphs]
        assert paragraphs == [("Heading 1", "Plan"), ("Normal", "Ship it.")]
        md = alice.get(f"/v1/runs/{run_id}/files/agent1/out/notes.md")
        assert md.text == notes and md.headers["content-type"].startswith("text/markdown")
        assert md.headers["x-content-type-options"] == "nosniff"
        assert bob.get(f"/v1/runs/{run_id}/files/agent1/out/notes.md").status_code == 403
    api.fake.assert_complete()

"""Multi-turn workspaces over HTTP: a session's next turn edits what the last winner wrote,
``POST /v1/sessions/{id}/clear`` starts afresh, and no tenant starts from another's run.

Real uvicorn, nats-server, orchestrator, worker and gateway; the scripted fake model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api_stack import ALICE, BOB, ApiStack, running_gateway, start_api_stack
from tests.support.fakes.openai_server import answer, text, tool_call, vote

pytestmark = pytest.mark.timeout(120)

READ = "mcp__workspace__read_file"
WRITE = "mcp__workspace__write_file"
EDIT = "mcp__workspace__edit_file"
LIST = "mcp__workspace__list_directory"


@pytest.fixture
def api(tmp_path, nats_url, fake_model) -> Iterator[ApiStack]:
    """The API stack plus a gateway keeping runs under ``tmp_path / "runs"``."""
    stack, stop = start_api_stack(tmp_path, nats_url, fake_model)
    try:
        with running_gateway(nats_url, tmp_path):
            yield stack
    finally:
        stop()


def _final(runs: Path, run_id: str) -> Path:
    final = runs / run_id / "final_workspace"
    deadline = time.monotonic() + 10
    while not final.is_dir():
        assert time.monotonic() < deadline, f"no final workspace for {run_id}"
        time.sleep(0.02)
    return final


def _results(fake, model: str, since: int) -> list[str]:
    """Tool results the model saw in its requests from ``since`` on, first seen first."""
    seen: list[str] = []
    for request in fake.requests_for(model)[since:]:
        for message in request.messages:
            content = str(message.get("content"))
            if message.get("role") == "tool" and content not in seen:
                seen.append(content)
    return seen


def test_a_session_turn_edits_the_last_winners_file_until_clear(api, tmp_path):
    runs = tmp_path / "runs"
    config = api.config(["m1"])
    config["agents"][0]["backend"]["cwd"] = "ws"
    fake = api.fake
    with api.client() as client:
        session = client.post("/v1/sessions", json={"config": config}).json()
        turns = f"/v1/sessions/{session['id']}/turns"

        fake.script("m1", [
            tool_call(WRITE, {"path": "plan.md", "content": "1. design\n"}),
            answer("plan.md has step 1."), vote("agent1", "done"), text("Final: step 1."),
        ])  # fmt: skip
        first = client.post(turns, json={"question": "Start plan.md", "wait": True})
        assert first.status_code == 201 and first.json()["status"] == "completed"
        first_id = first.json()["id"]
        assert (_final(runs, first_id) / "plan.md").read_text() == "1. design\n"

        before = len(fake.requests_for("m1"))
        fake.script("m1", [
            tool_call(READ, {"path": "previous_turn/plan.md"}),
            tool_call(EDIT, {"path": "plan.md", "old_text": "1. design\n",
                             "new_text": "1. design\n2. build\n"}),
            tool_call(WRITE, {"path": "previous_turn/plan.md", "content": "gone"}),
            answer("plan.md has two steps."), vote("agent1", "done"), text("Final: two steps."),
        ])  # fmt: skip
        second = client.post(turns, json={"question": "Add step 2", "wait": True})
        assert second.status_code == 201 and second.json()["status"] == "completed"
        second_id = second.json()["id"]
        read, edited, refused = _results(fake, "m1", before)
        assert read == "1. design\n" and edited.startswith("edited")
        assert "Permission denied" in refused and "previous_turn_read_only" in refused
        assert (runs / second_id / "ws" / "plan.md").read_text() == "1. design\n2. build\n"
        assert (_final(runs, second_id) / "plan.md").read_text() == "1. design\n2. build\n"
        assert (runs / first_id / "final_workspace" / "plan.md").read_text() == "1. design\n"
        with client.stream("GET", f"/v1/runs/{second_id}/events") as response:
            denials = [json.loads(line[len("data: "):]) for line in response.iter_lines()
                       if line.startswith("data: ") and "tool_denied" in line]  # fmt: skip
        assert [d["rule"] for d in denials] == ["previous_turn_read_only"]

        # Another tenant can neither clear the session nor read its files.
        with api.client(BOB) as bob:
            assert bob.post(f"/v1/sessions/{session['id']}/clear").status_code == 403

        cleared = client.post(f"/v1/sessions/{session['id']}/clear")
        assert cleared.status_code == 200 and cleared.json()["cleared_after"] == 2
        assert [t["run_id"] for t in cleared.json()["turns"]] == [first_id, second_id]

        before = len(fake.requests_for("m1"))
        fake.script("m1", [
            tool_call(LIST, {}), answer("Nothing yet."), vote("agent1", "done"),
            text("Final: empty."),
        ])  # fmt: skip
        third = client.post(turns, json={"question": "What is in the workspace?", "wait": True})
        assert third.status_code == 201 and third.json()["status"] == "completed"
        assert _results(fake, "m1", before)[0].endswith(":\n(empty)")
        assert list((runs / third.json()["id"] / "ws").iterdir()) == []
        # ...and the history is gone too.
        asked = fake.requests_for("m1")[before].messages
        assert not any("Start plan.md" in str(m.get("content")) for m in asked)


def test_a_run_starts_only_from_the_callers_own_finished_run(api, tmp_path):
    runs = tmp_path / "runs"
    config = api.config(["m1"])
    config["agents"][0]["backend"]["cwd"] = "ws"
    fake = api.fake
    with api.client(ALICE) as alice, api.client(BOB) as bob:
        fake.script("m1", [
            tool_call(WRITE, {"path": "secret.txt", "content": "alice's secret"}),
            answer("Saved."), vote("agent1", "done"), text("Final: saved."),
        ])  # fmt: skip
        created = alice.post("/v1/runs", json={"question": "Save it", "config": config})
        alice_run = created.json()["id"]
        with alice.stream("GET", f"/v1/runs/{alice_run}/events") as response:
            for _ in response.iter_lines():
                pass
        _final(runs, alice_run)

        stolen = bob.post("/v1/runs", json={
            "question": "Read it", "config": config, "previous_run_id": alice_run,
        })  # fmt: skip
        assert stolen.status_code == 403
        body = stolen.json()
        assert body["error"]["code"] == "forbidden"
        assert body["detail"] == [
            {"path": "body.previous_run_id", "message": "another tenant's run"}
        ]
        for bad in ("nosuchrun0", "../" + alice_run):
            unknown = bob.post("/v1/runs", json={
                "question": "Read it", "config": config, "previous_run_id": bad,
            })  # fmt: skip
            assert unknown.status_code == 422, bad
            assert unknown.json()["detail"][0]["path"] == "body.previous_run_id"
        session = alice.post("/v1/sessions", json={"config": config}).json()
        mixed = alice.post("/v1/runs", json={
            "question": "q", "session_id": session["id"], "previous_run_id": alice_run,
        })  # fmt: skip
        assert mixed.status_code == 422
        assert not any(p.name != alice_run for p in runs.iterdir())  # nothing ran for bob

        # Alice herself may continue from her run outside a session.
        before = len(fake.requests_for("m1"))
        fake.script("m1", [
            tool_call(READ, {"path": "secret.txt"}), answer("Read."), vote("agent1", "done"),
            text("Final: read."),
        ])  # fmt: skip
        again = alice.post("/v1/runs", json={
            "question": "Read it", "config": config, "previous_run_id": alice_run,
        })  # fmt: skip
        assert again.status_code == 201
        with alice.stream("GET", f"/v1/runs/{again.json()['id']}/events") as response:
            for _ in response.iter_lines():
                pass
        assert _results(fake, "m1", before)[0] == "alice's secret"

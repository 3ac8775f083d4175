"""Runs through the HTTP API: create, SSE replay/follow/resume, get, list, cancel."""

from __future__ import annotations

import pytest

from tests.support.api_stack import ALICE, BOB, read_sse
from tests.support.fakes.agents import study_agent
from tests.support.fakes.openai_server import hang

pytestmark = pytest.mark.timeout(120)

A1 = "Canberra is the capital of Australia."
A2 = "The capital of Australia is Canberra, chosen as a compromise between Sydney and Melbourne."
A3 = "Australia's capital city is Canberra, in the Australian Capital Territory."
FINAL = "Canberra is the capital (final presentation)."


def script_trio(fake, presentation: str = FINAL) -> None:
    for model, mine in (("m1", A1), ("m2", A2), ("m3", A3)):
        fake.behave(model, study_agent(mine, "agent2", presentation=presentation))


def follow(client, run_id: str, **headers: str) -> list[dict]:
    with client.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_sse(response)


def test_create_stream_and_get_a_run(api):
    script_trio(api.fake)
    with api.client() as client:
        created = client.post(
            "/v1/runs", json={"team": "trio", "question": "Capital of Australia?"}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        run_id = body["id"]
        assert body["status"] == "running"
        assert body["links"] == {
            "self": f"/v1/runs/{run_id}",
            "events": f"/v1/runs/{run_id}/events",
            "cancel": f"/v1/runs/{run_id}/cancel",
        }
        assert created.headers["location"] == f"/v1/runs/{run_id}"

        frames = follow(client, run_id)
        kinds = [f["event"] for f in frames]
        assert kinds[0] == "run_created" and kinds[-1] == "run_finished"
        assert [f["data"]["kind"] for f in frames] == kinds
        ids = [int(f["id"]) for f in frames]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert {"chunk", "answer_accepted", "vote_accepted", "final_answer"} <= set(kinds)
        assert frames[-1]["data"]["status"] == "completed"

        run = client.get(f"/v1/runs/{run_id}").json()
        assert run["status"] == "completed"
        assert run["winner"] == "a2"
        assert run["final_answer"] == FINAL
        assert run["team"] == "trio"
        assert sorted(a["content"] for a in run["answers"]) == sorted([A1, A2, A3])
        assert {v["voter"]: v["target"] for v in run["votes"]} == {
            "a1": "a2",
            "a2": "a2",
            "a3": "a2",
        }
        agents = {a["id"]: a for a in run["agents"]}
        assert set(agents) == {"a1", "a2", "a3"} and agents["a2"]["status"] == "winner"
        assert all(a["completion_tokens"] > 0 for a in agents.values())
        timings = run["timings"]
        assert timings["duration_seconds"] is not None and timings["duration_seconds"] >= 0
        assert timings["started_at"] <= timings["first_turn_at"] <= timings["finished_at"]


def test_events_resume_after_last_event_id(api):
    api.fake.behave("s1", study_agent("forty-two", "agent1", presentation="42"))
    with api.client() as client:
        run_id = client.post("/v1/runs", json={"team": "solo", "question": "6*7?"}).json()["id"]
        frames = follow(client, run_id)
        resumed = follow(client, run_id, **{"Last-Event-ID": frames[2]["id"]})
        assert [f["id"] for f in resumed] == [f["id"] for f in frames[3:]]
        # Nothing after the last event of a finished run: 204 tells EventSource to stop.
        done = client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": frames[-1]["id"]})
        assert done.status_code == 204
        # Junk Last-Event-ID replays from the start.
        again = follow(client, run_id, **{"Last-Event-ID": "not-a-number"})
        assert len(again) == len(frames)


def test_list_runs_pages_and_filters(api):
    api.fake.behave("s1", study_agent("forty-two", "agent1", presentation="42"))
    with api.client() as client:
        ids = []
        for question in ("one?", "two?"):
            run_id = client.post("/v1/runs", json={"team": "solo", "question": question}).json()[
                "id"
            ]
            follow(client, run_id)
            ids.append(run_id)
        page = client.get("/v1/runs", params={"limit": 1}).json()
        assert page["total"] == 2 and page["next_offset"] == 1
        assert [r["id"] for r in page["data"]] == [ids[1]]  # newest first
        second = client.get("/v1/runs", params={"limit": 1, "offset": 1}).json()
        assert [r["id"] for r in second["data"]] == [ids[0]] and second["next_offset"] is None
        completed = client.get("/v1/runs", params={"status": "completed"}).json()
        assert sorted(r["id"] for r in completed["data"]) == sorted(ids)
        assert client.get("/v1/runs", params={"status": "running"}).json()["total"] == 0
        assert client.get("/v1/runs", params={"status": "bogus"}).status_code == 422
    with api.client(BOB) as other:
        assert other.get("/v1/runs").json()["total"] == 0  # tenants see only their runs


def test_cancel_keeps_the_run_and_ends_it_cancelled(api):
    api.fake.behave("h1", lambda request: hang(20))
    with api.client() as client:
        run_id = client.post("/v1/runs", json={"team": "slow", "question": "slow?"}).json()["id"]
        with client.stream("GET", f"/v1/runs/{run_id}/events") as response:
            lines = response.iter_lines()
            for line in lines:  # wait until the turn is running
                if line == "event: turn_started":
                    break
            cancelled = client.post(f"/v1/runs/{run_id}/cancel", json={"reason": "enough"})
            assert cancelled.status_code == 200, cancelled.text
            rest = "\n".join(lines)
        assert "event: run_finished" in rest
        run = client.get(f"/v1/runs/{run_id}").json()
        assert run["status"] == "cancelled"
        assert "enough" in run["message"]
        # Cancelling a finished run changes nothing.
        again = client.post(f"/v1/runs/{run_id}/cancel")
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        assert client.get("/v1/runs", params={"status": "cancelled"}).json()["total"] == 1


def test_config_runs_and_other_tenants(api):
    api.fake.behave("c1", study_agent("by config", "agent1", presentation="config final"))
    with api.client() as client:
        created = client.post(
            "/v1/runs", json={"config": api.config(["c1"]), "question": "config run?"}
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        follow(client, run_id)
        assert client.get(f"/v1/runs/{run_id}").json()["final_answer"] == "config final"
    with api.client(BOB) as other:
        for method, path in (
            ("GET", f"/v1/runs/{run_id}"),
            ("GET", f"/v1/runs/{run_id}/events"),
            ("POST", f"/v1/runs/{run_id}/cancel"),
        ):
            response = other.request(method, path)
            assert response.status_code == 403, (path, response.text)
            assert response.json()["error"]["type"] == "permission_error"
    with api.client(None) as anonymous:
        response = anonymous.get(f"/v1/runs/{run_id}")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert (
            anonymous.get("/v1/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        assert anonymous.get("/v1/teams").status_code == 401
        assert anonymous.post("/v1/chat/completions", json={}).status_code == 401
    with api.client(ALICE) as client:
        assert client.get("/v1/runs/0123456789abcdef").status_code == 404
        assert client.get("/v1/runs/bad%20id").status_code == 404


def test_config_warnings_come_back_with_the_run(api):
    api.fake.behave("w1", study_agent("warned", "agent1", presentation="warned final"))
    config = api.config(["w1"])
    config["agents"][0]["backend"]["permission_mode"] = "default"  # accepted, not applied
    with api.client() as client:
        created = client.post("/v1/runs", json={"config": config, "question": "warnings?"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert len(body["warnings"]) == 1
        assert body["warnings"][0].startswith("agents[0].backend.permission_mode: ignored")
        follow(client, body["id"])
        run = client.get(f"/v1/runs/{body['id']}").json()
        assert run["warnings"] == body["warnings"] and run["final_answer"] == "warned final"
        api.fake.behave("s1", study_agent("plain", "agent1", presentation="plain final"))
        plain = client.post("/v1/runs", json={"team": "solo", "question": "no warnings?"})
        assert plain.json()["warnings"] == []
        follow(client, plain.json()["id"])

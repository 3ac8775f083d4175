"""``Idempotency-Key`` on ``POST /v1/runs``: a create whose reply was lost is sent again
and starts or finds the same run, even when the first attempt died half-way."""

from __future__ import annotations

import hashlib
import time

import nats
import pytest
from massgen_api.records import RunIndexEntry
from massgen_proto import subjects

from tests.support.api_stack import ALICE, BOB, read_sse
from tests.support.fakes.agents import study_agent

pytestmark = pytest.mark.timeout(120)

ANSWER = "Canberra is the capital of Australia."


def _follow(client, run_id: str) -> dict:
    with client.stream("GET", f"/v1/runs/{run_id}/events") as response:
        read_sse(response)
    return client.get(f"/v1/runs/{run_id}").json()


def test_the_same_key_gives_the_same_run_and_another_question_is_refused(api):
    api.fake.behave("m1", study_agent(ANSWER, "agent1", presentation="Canberra."))
    body = {"question": "Capital of Australia?", "config": api.config(["m1"])}
    with api.client() as client:
        first = client.post("/v1/runs", json=body, headers={"Idempotency-Key": "q-1"})
        again = client.post("/v1/runs", json=body, headers={"Idempotency-Key": "q-1"})
        assert first.status_code == again.status_code == 201, again.text
        assert first.json()["id"] == again.json()["id"]
        assert _follow(client, first.json()["id"])["status"] == "completed"
        assert len([r for r in client.get("/v1/runs").json()["data"]]) == 1
        other = client.post("/v1/runs", json={**body, "question": "Other?"},
                            headers={"Idempotency-Key": "q-1"})  # fmt: skip
        assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    with api.client(BOB) as bob:  # keys are per tenant
        theirs = bob.post("/v1/runs", json=body, headers={"Idempotency-Key": "q-1"})
        assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


def test_a_create_that_died_after_indexing_the_run_is_finished_by_its_retry(api):
    """The API replica died between writing the run's index entry and asking the
    orchestrator: the client's retry with the same key starts the run."""
    api.fake.behave("m1", study_agent(ANSWER, "agent1", presentation="Canberra."))
    body = {"question": "Capital of Australia?", "config": api.config(["m1"])}
    run_id = hashlib.sha256(b"acme\0half-done").hexdigest()[:16]
    entry = RunIndexEntry(
        run_id=run_id, tenant="acme", created_at=time.time(), question=body["question"]
    )

    async def index_only() -> None:  # what the dead replica had done
        nc = await nats.connect(api.nats_url)
        kv = await nc.jetstream().key_value(subjects.API_RUNS_BUCKET)
        await kv.create(run_id, entry.model_dump_json().encode())
        await nc.close()

    api.services.run(index_only())
    with api.client(ALICE) as client:
        retried = client.post("/v1/runs", json=body, headers={"Idempotency-Key": "half-done"})
        assert retried.status_code == 201, retried.text
        assert retried.json()["id"] == run_id
        assert _follow(client, run_id)["status"] == "completed"

"""Budgets through the HTTP API: a run's own (``orchestrator.max_cost_usd`` /
``max_total_tokens``) and each tenant's per day (``MASSGEN_API_TENANT_DAILY_*``).

Real orchestrator, worker and uvicorn; the fake model named as a model litellm has a
price for, so the dollars are litellm's own arithmetic on the fake's token counts.
"""

from __future__ import annotations

import time

import pytest

from tests.support.api_stack import ALICE, BOB, read_sse, start_api_stack
from tests.support.fakes.agents import study_agent
from tests.support.fakes.openai_server import answer, hang

pytestmark = pytest.mark.timeout(120)

PRICED = "gpt-4o-mini"  # in litellm's price map
ANSWER = "Canberra is the capital of Australia."


def _run(client, config: dict) -> dict:
    created = client.post("/v1/runs", json={"question": "Capital of Australia?", "config": config})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    with client.stream("GET", f"/v1/runs/{run_id}/events") as response:
        frames = read_sse(response)
    run = client.get(f"/v1/runs/{run_id}").json()
    run["kinds"] = [f["event"] for f in frames]
    run["frames"] = frames
    return run


def test_a_run_over_its_dollar_budget_ends_with_its_best_answer_and_says_why(api):
    """agent1's first answer costs more than the run may spend, while agent2 is still
    thinking: agent2's turn is cancelled and agent1's answer is the final answer."""
    api.fake.behave(PRICED, study_agent(ANSWER, "agent1", presentation="never presented"))
    api.fake.script("slow", [hang(30.0, then=answer("Sydney?"))])
    config = api.config([PRICED, "slow"], max_cost_usd=0.000001)
    with api.client() as client:
        run = _run(client, config)
    assert run["status"] == "completed", run
    assert run["final_answer"] == ANSWER  # the stored answer: no presentation turn
    assert "budget was reached (max_cost_usd 1e-06" in run["message"]
    assert "budget_reached" in run["kinds"] and "presentation_started" not in run["kinds"]
    agents = {a["id"]: a for a in run["agents"]}
    assert run["cost_usd"] > 0 and agents["a1"]["cost_usd"] == run["cost_usd"]
    assert agents["a2"]["cost_usd"] == 0  # not a priced model
    assert run["timings"]["duration_seconds"] < 10  # agent2's 30 s were not waited for


def test_a_tenant_over_its_daily_token_limit_gets_429_and_others_do_not(
    tmp_path, nats_url, fake_model
):
    fake_model.behave("m1", study_agent(ANSWER, "agent1", presentation="Canberra."))
    stack, stop = start_api_stack(tmp_path, nats_url, fake_model, tenant_daily_tokens=10)
    try:
        config = stack.config(["m1"])
        with stack.client(ALICE) as alice, stack.client(BOB) as bob:
            first = _run(alice, config)
            assert first["status"] == "completed"
            assert sum(a["prompt_tokens"] + a["completion_tokens"] for a in first["agents"]) > 10
            for _ in range(50):  # the finished run is counted as its event goes by
                refused = alice.post("/v1/runs", json={"question": "Again?", "config": config})
                if refused.status_code == 429:
                    break
                assert refused.status_code == 201, refused.text
                time.sleep(0.1)
            assert refused.status_code == 429, refused.text
            error = refused.json()["error"]
            assert error["code"] == "tenant_limit"
            assert "daily limit of 10" in error["message"] and "00:00 UTC" in error["message"]
            assert _run(bob, config)["status"] == "completed"  # another tenant's day
            usage = alice.get("/v1/usage").json()
            assert usage["counted"] and usage["token_limit"] == 10 and usage["tokens"] > 10
            assert usage["tenant"] == "acme" and len(usage["day"]) == 8
    finally:
        stop()

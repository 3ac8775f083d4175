"""A stolen worker login against a tenant's run on the cluster stand-in, through the API.

The ``make cluster-up`` topology (3 NATS nodes with TLS and the generated permissions, 2
orchestrators, 2 workers per provider, the gateway, the API with bearer tokens). The
attacker logs in as ``worker-vllm`` (one provider's worker credentials) while a tenant's
3-agent run goes through the HTTP API, and tries everything its login allows:
overhearing other services' replies, forging the run's outcome and another agent's
streamed words, and acting on turns it was not handed. The run must complete with the
right winner, and nothing the attacker sent may show in anything the API serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from massgen_proto import events as ev
from massgen_proto import subjects
from massgen_proto.messages import (
    OrchestratorReplyAdapter,
    WorkerReportAdapter,
    WorkflowCall,
    WorkflowSubmission,
)
from massgen_proto.tools import GatewayReplyAdapter, ToolCallRequest

from bench.bench_chaos import Cluster, fake_model
from tests.support.cluster_helpers import (
    check_result,
    connect_as,
    team3_config,
    team3_expected,
    violations,
)

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(300)]

ATTACKER = "worker-vllm"


@pytest.fixture(scope="module")
def slow_fake() -> Iterator[str]:
    # 20 pieces at 0.15 s: each response takes ~3 s, so the run is open a good while.
    with fake_model(token_delay=0.15, tokens=20) as url:
        yield url


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(
        tmp_path_factory.mktemp("attack"), ["chatcompletion", "vllm"], workers_per_provider=2,
        orchestrators=2, apis=1, worker_concurrency=8, stream_replicas=3, with_extras=True,
    ).up(timeout=180)  # fmt: skip
    try:
        assert cluster.api_urls, f"the API did not start: {cluster.notes}"
        yield cluster
    finally:
        cluster.down()


async def _attack(cluster: Cluster, base_url: str) -> None:
    errors: list[str] = []

    async def record(error: Exception) -> None:
        errors.append(str(error).lower())

    # 1. Overhear: nats-py's default inbox prefix, and the other services' inboxes.
    eavesdropper = await connect_as(cluster, ATTACKER, inbox_prefix="_INBOX", error_cb=record)
    overheard: list[str] = []

    async def overhear(msg) -> None:
        overheard.append(msg.subject)

    others = ["orchestrator", "mcp-gateway", "api", "worker-chatcompletion"]
    forbidden = ["_INBOX.>", *(subjects.inbox_wildcard(u) for u in others)]
    for subject in forbidden:
        await eavesdropper.subscribe(subject, cb=overhear)
    await eavesdropper.flush()

    # 2. The tenant's run, through the API.
    api = cluster.api_urls[0]
    async with httpx.AsyncClient(headers=cluster.api_headers(), timeout=60) as http:
        created = await http.post(
            f"{api}/v1/runs",
            json={"question": "[attack] What is the capital of Australia?",
                  "config": team3_config(base_url)},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        await asyncio.sleep(1.0)  # first turns under way

        # 3. Act, with the attacker's own (allowed) inbox prefix.
        attacker = await connect_as(cluster, ATTACKER, error_cb=record)
        try:
            turn = f"{run_id}-agent1-t1"  # agent1 is a chatcompletion agent: not ours
            report = WorkflowSubmission(
                run_id=run_id, turn_id=turn, token="0" * 32, attempt=1,
                calls=[WorkflowCall(name="new_answer", arguments={"content": "PWNED"})],
            )  # fmt: skip
            reply = await attacker.request(
                subjects.SUBMIT_REPORT, WorkerReportAdapter.dump_json(report), timeout=10
            )
            verdict = OrchestratorReplyAdapter.validate_json(reply.data)
            assert verdict.kind == "verdict" and verdict.status == "stale", verdict
            call = ToolCallRequest(
                run_id=run_id, agent_id="a1", label="agent1", phase="coordinate", turn_id=turn,
                token="0" * 32, name="mcp__workspace__write_file",
                arguments={"path": "x.md", "content": "PWNED"},
            )  # fmt: skip
            reply = await attacker.request(
                subjects.GATEWAY_TOOLS_CALL, call.model_dump_json().encode(), timeout=10
            )
            refused = GatewayReplyAdapter.validate_json(reply.data)
            assert refused.kind == "error" or refused.is_error, refused
            ids = {"run_id": run_id, "agent": "a1", "label": "agent1", "turn_id": turn}
            forged = [
                ev.FinalAnswer(run_id=run_id, agent="a1", label="agent1", content="PWNED"),
                ev.RunFinished(run_id=run_id, status="completed", winner="a1"),
                ev.Chunk(**ids, channel="answer", text="PWNED"),
                ev.Chunk(**ids, channel="answer", text="PWNED", tag="0" * 24),
                ev.TokenUsage(**ids, prompt_tokens=10**9, completion_tokens=1),
            ]
            for source in ("run", "stream", "tools"):
                for event in forged:
                    await attacker.publish(
                        subjects.events_subject(run_id, source), event.model_dump_json().encode()
                    )
            await attacker.flush()
            # The server's -ERR for a refused publish may come after the flush's PONG.
            for _ in range(100):
                if any(f"massgen.events.{run_id}.run" in e for e in errors):
                    break
                await asyncio.sleep(0.05)
        finally:
            await attacker.close()

        # 4. The run completes as the agents decided; nothing forged shows anywhere.
        async with http.stream("GET", f"{api}/v1/runs/{run_id}/events") as response:
            body = "".join([chunk async for chunk in response.aiter_text()])
        assert "PWNED" not in body and "run_finished" in body
        view = (await http.get(f"{api}/v1/runs/{run_id}")).json()
    await eavesdropper.close()

    assert check_result(view, team3_expected()) == [], view
    assert "PWNED" not in str(view)
    assert all(a["prompt_tokens"] < 10**9 for a in view["agents"])
    assert overheard == []
    for subject in forbidden:
        assert any(f'subscription to "{subject.lower()}"' in e for e in errors), (subject, errors)
    assert any(f"massgen.events.{run_id}.run" in e for e in errors), errors
    walls = [line for line in violations(cluster) if f'user:{ATTACKER}"' not in line]
    assert walls == [], walls  # every permission violation is the attacker's
    assert violations(cluster, ATTACKER)


def test_a_stolen_worker_login_cannot_overhear_forge_or_act_on_a_tenants_run(
    stand_in: Cluster, slow_fake: str
) -> None:
    asyncio.run(_attack(stand_in, slow_fake))

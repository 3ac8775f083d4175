"""Least privilege on a real nats-server with the generated permissions.

One nats-server runs with the ``authorization`` block that ``deploy/k8s/permissions.py``
renders for the manifests and the local cluster; the orchestrator, a worker, the
mcp-gateway, the API service and the run's client each log in as their own user
(``api`` for the client). A run with a tool call goes through and completes, while an
attacker holding a worker's credentials is refused every inbox but its own, cannot read the runs
bucket, and cannot act on the run at the gateway.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import nats
import permissions  # deploy/k8s: on the path by the pytest ``pythonpath`` of pyproject.toml
import pytest
from massgen_api.metrics import Metrics
from massgen_api.service import Backend
from massgen_api.settings import ApiSettings
from massgen_cli.client import follow_run
from massgen_gateway.service import GatewayService
from massgen_gateway.settings import GatewaySettings
from massgen_kit.health import inbox_prefix_for, nats_url_with_credentials
from massgen_kit.jetstream import StreamSettings
from massgen_orchestrator.service import OrchestratorService
from massgen_orchestrator.settings import OrchestratorSettings
from massgen_proto import events as ev
from massgen_proto import subjects
from massgen_proto.messages import (
    OrchestratorReplyAdapter,
    WorkerReportAdapter,
    WorkflowCall,
    WorkflowSubmission,
)
from massgen_proto.tools import GatewayReplyAdapter, ToolCallRequest
from massgen_worker.service import WorkerService
from massgen_worker.settings import WorkerSettings

from tests.support.fakes.openai_server import answer, hang, text, tool_call, vote
from tests.support.nats_fixture import NatsServer

PROVIDERS = ["chatcompletion", "vllm"]
WORKER = permissions.worker_user("chatcompletion")
WRITE = "mcp__workspace__write_file"


class SecuredNats:
    """A nats-server with the generated users; ``url(user)`` logs in as one of them."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.passwords = {u: "p" + secrets.token_urlsafe(12) for u in permissions.users(PROVIDERS)}
        for user, password in self.passwords.items():
            monkeypatch.setenv(permissions.password_env(user), password)  # nats-server reads them
        conf = tmp_path / "nats.conf"
        (tmp_path / "auth.conf").write_text(permissions.render_authorization(PROVIDERS))
        conf.write_text('include "auth.conf"\n')
        self.server = NatsServer(store_dir=tmp_path / "js", extra_args=["-c", str(conf)]).start()

    def url(self, user: str) -> str:
        return nats_url_with_credentials(self.server.url, user, self.passwords[user])

    def violations(self) -> list[str]:
        return [line for line in self.server.output if "Violation" in line]


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    nats_server = SecuredNats(tmp_path, monkeypatch)
    try:
        yield nats_server
    finally:
        nats_server.server.stop()


async def test_a_run_goes_through_while_a_stolen_worker_login_overhears_nothing(
    secured: SecuredNats, fake_model, tmp_path: Path
) -> None:
    memory = {"memory_streams": True}
    orchestrator = OrchestratorService(
        OrchestratorSettings(nats_url=secured.url("orchestrator"), **memory)
    )
    await orchestrator.start()
    gateway = GatewayService(GatewaySettings(
        nats_url=secured.url("mcp-gateway"), workspace_root=str(tmp_path / "runs"),
        home=str(tmp_path), **memory,
    ))  # fmt: skip
    await gateway.start()
    worker = WorkerService(
        secured.url(WORKER), ["chatcompletion"],
        WorkerSettings(fetch_timeout=0.5, graceful_timeout=1.0,
                       stream_settings=StreamSettings(memory=True)),
    )  # fmt: skip
    await worker.start()
    api = Backend(ApiSettings(
        nats_url=secured.server.url, nats_user="api", nats_password=secured.passwords["api"],
        **memory,
    ), Metrics())  # fmt: skip
    await api.start()

    # The attacker: a worker's credentials, nats-py's default inbox prefix.
    errors: list[str] = []

    async def record(error: Exception) -> None:
        errors.append(str(error).lower())

    attacker = await nats.connect(secured.url(WORKER), name="attacker", error_cb=record)
    overheard: list[str] = []

    async def overhear(msg) -> None:
        overheard.append(msg.subject)

    others = ["orchestrator", "mcp-gateway", "api", permissions.worker_user("vllm")]
    forbidden = ["_INBOX.>", *(subjects.inbox_wildcard(u) for u in others)]
    for subject in forbidden:
        await attacker.subscribe(subject, cb=overhear)
    await attacker.flush()

    client = await nats.connect(
        secured.url("api"), inbox_prefix=inbox_prefix_for(secured.url("api"), "cli")
    )
    run: asyncio.Task | None = None
    try:
        fake_model.script("m1", [
            tool_call(WRITE, {"path": "note.md", "content": "hello"}),
            # The turn stays open while the attacker tries its luck.
            hang(3.0, then=answer("Wrote the note.")), vote("agent1", "mine"),
            text("Final: note written."),
        ])  # fmt: skip
        config = {"agents": [{"id": "a1", "backend": {
            "type": "chatcompletion", "model": "m1", "base_url": fake_model.base_url,
            "api_key": "sk-fake", "cwd": "ws"}}]}  # fmt: skip
        events: list = []
        run = asyncio.create_task(follow_run(client, "Write a note.", config, events.append))
        for _ in range(600):
            if any(e.kind == "chunk" and e.channel == "tool_result" for e in events):
                break
            await asyncio.sleep(0.02)
        run_id = events[0].run_id
        note = tmp_path / "runs" / run_id / "ws" / "note.md"
        assert note.read_text() == "hello"

        # With its own prefix the attacker still cannot read the runs bucket (the run's
        # secret is there)...
        own = await nats.connect(
            secured.url(WORKER), name="attacker", error_cb=record,
            inbox_prefix=subjects.inbox_prefix(WORKER),
        )  # fmt: skip
        try:
            with pytest.raises(Exception):  # noqa: B017 - timeout or permission error
                await own.jetstream(timeout=1.0).get_last_msg(
                    f"KV_{subjects.RUNS_BUCKET}", f"$KV.{subjects.RUNS_BUCKET}.{run_id}"
                )
            assert any("publish to" in e and "kv_massgen_runs" in e for e in errors), errors
            # ...nor act on the live turn at the gateway without the turn's token.
            forged = ToolCallRequest(
                run_id=run_id, agent_id="a1", label="agent1", phase="coordinate",
                turn_id=f"{run_id}-agent1-t1", token="0" * 32, name=WRITE,
                arguments={"path": "note.md", "content": "pwned"},
            )  # fmt: skip
            reply = await own.request(
                subjects.GATEWAY_TOOLS_CALL, forged.model_dump_json().encode(), timeout=10
            )
            result = GatewayReplyAdapter.validate_json(reply.data)
            assert result.is_error and "(bad_token)" in result.content, result
            # ...nor answer for the agent: the orchestrator wants the turn's token too.
            report = WorkflowSubmission(
                run_id=run_id, turn_id=f"{run_id}-agent1-t1", token="0" * 32, attempt=1,
                calls=[WorkflowCall(name="new_answer", arguments={"content": "PWNED"})],
            )  # fmt: skip
            reply = await own.request(
                subjects.SUBMIT_REPORT, WorkerReportAdapter.dump_json(report), timeout=10
            )
            verdict = OrchestratorReplyAdapter.validate_json(reply.data)
            assert verdict.kind == "verdict" and verdict.status == "stale", verdict
            assert orchestrator.refusals == 1
            # ...nor forge the run's outcome: the orchestrator's subject is closed to it,
            # and on its own subject an outcome is not an event any reader takes.
            forged_events = [
                ev.FinalAnswer(run_id=run_id, agent="a1", label="agent1", content="PWNED"),
                ev.RunFinished(run_id=run_id, status="completed", winner="a1"),
            ]
            # ...nor put words in the agent's mouth or inflate its token count: streamed
            # events count only with the tag the orchestrator announced for the turn.
            turn = f"{run_id}-agent1-t1"
            ids = {"run_id": run_id, "agent": "a1", "label": "agent1", "turn_id": turn}
            for tag in ("", "0" * 24):
                forged_events += [
                    ev.Chunk(**ids, channel="answer", text="PWNED", tag=tag),
                    ev.TokenUsage(**ids, prompt_tokens=10**9, completion_tokens=1, tag=tag),
                ]
            for source in ("run", "stream"):
                for event in forged_events:
                    await own.publish(
                        subjects.events_subject(run_id, source), event.model_dump_json().encode()
                    )
            await own.flush()
            await asyncio.sleep(0.5)
            assert any("publish to" in e and f"massgen.events.{run_id}.run" in e for e in errors), (
                errors
            )
        finally:
            await own.close()
        assert not run.done()  # all of that happened while the run was going on

        summary = await asyncio.wait_for(run, 120)
        assert summary.status == "completed", summary
        assert summary.final_answer == "Final: note written."
        assert not [e for e in events if "PWNED" in (getattr(e, "content", "") or "")]
        assert not [e for e in events if e.kind == "chunk" and e.text == "PWNED"]
        assert not [e for e in events if e.kind == "token_usage" and e.prompt_tokens == 10**9]
        assert [e for e in events if e.kind == "chunk" and e.channel == "answer"]
        assert note.read_text() == "hello"
        assert gateway.refusals == 1
        # The API replays the run's events (an ordered consumer delivering to _INBOX_api).
        replayed = await asyncio.wait_for(api.summary(run_id), 30)
        assert replayed is not None and replayed.status == "completed"
        assert replayed.final_answer == "Final: note written."
        assert all(t["prompt_tokens"] < 10**9 for t in replayed.tokens.values())
        # Every reader, from the start or resumed mid-run, sees the real chunks only.
        relayed = await _chunks(api, run_id)
        assert relayed and b"PWNED" not in b"".join(data for _, data in relayed)
        started = min(seq for seq, data in await _all_events(api, run_id)
                      if b'"kind":"turn_started"' in data)  # fmt: skip
        resumed = await _chunks(api, run_id, after=started)
        assert resumed == [(seq, data) for seq, data in relayed if seq > started]
        assert await api.orchestrator_status(run_id) == "completed"

        # Every forbidden subscription was refused by the server; nothing came through.
        for subject in forbidden:
            assert any(
                "permissions violation" in e and f'subscription to "{subject.lower()}"' in e
                for e in errors
            ), (subject, errors)
        assert overheard == []

        # The services themselves never hit a wall: every violation is the attacker's.
        services_walls = [line for line in secured.violations() if "attacker" not in line]
        assert services_walls == [], services_walls
        assert any("attacker" in line for line in secured.violations())
    finally:
        if run is not None and not run.done():
            run.cancel()
        await client.close()
        await attacker.close()
        await api.stop()
        await worker.stop()
        await gateway.stop()
        await orchestrator.stop()


async def _all_events(api: Backend, run_id: str, after: int = 0) -> list[tuple[int, bytes]]:
    """What the API relays of a finished run (from ``after`` on)."""
    out: list[tuple[int, bytes]] = []
    async for item in api.follow(run_id, after=after, heartbeat=2.0):
        if item is None:
            break
        out.append(item)
        if b'"kind":"run_finished"' in item[1]:
            break
    return out


async def _chunks(api: Backend, run_id: str, after: int = 0) -> list[tuple[int, bytes]]:
    return [(s, d) for s, d in await _all_events(api, run_id, after) if b'"kind":"chunk"' in d]

"""Long tool loops through the real mcp-gateway: an agent doing real file work makes one
tool call per model response, fifty of them, and still answers within its turn.

Real parts throughout: nats-server, the gateway service with its built-in workspace
tools, a WorkerService reaching the scripted fake model through litellm, and (second
test) the orchestrator service.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats
from massgen_kit.jetstream import StreamSettings
from massgen_proto import subjects
from massgen_proto.messages import Verdict, WorkerReportAdapter
from massgen_proto.tools import GatewayRequestAdapter
from massgen_worker.service import WorkerService
from massgen_worker.settings import WorkerSettings

from tests.support.fakes.openai_server import answer, text, tool_call, vote
from tests.support.fakes.turns import make_turn_request

FILES = 25
WRITE = "mcp__workspace__write_file"
READ = "mcp__workspace__read_file"


def file_work() -> list[Any]:
    """Fifty sequential tool calls: write ``FILES`` notes, then read each one back."""
    writes = [
        tool_call(WRITE, {"path": f"note{i}.md", "content": f"note {i}"}) for i in range(FILES)
    ]
    reads = [tool_call(READ, {"path": f"note{i}.md"}) for i in range(FILES)]
    return writes + reads


class Tap:
    """Records what the worker sends: reports (answering them as the orchestrator would,
    when ``respond``) and gateway requests (only listening: the real gateway answers)."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.reports: list[Any] = []
        self.gateway_requests: list[Any] = []
        self.changed = asyncio.Event()

    async def start(self, respond: bool) -> Tap:
        if respond:
            await self.nc.subscribe(subjects.SUBMIT_REPORT, cb=self._on_report)
        for subject in (subjects.GATEWAY_TOOLS_LIST, subjects.GATEWAY_TOOLS_CALL):
            await self.nc.subscribe(subject, cb=self._on_gateway_request)
        await self.nc.flush()
        return self

    async def _on_report(self, msg: Any) -> None:
        self.reports.append(WorkerReportAdapter.validate_json(msg.data))
        self.changed.set()
        await msg.respond(Verdict(status="accepted").model_dump_json().encode())

    async def _on_gateway_request(self, msg: Any) -> None:
        self.gateway_requests.append(GatewayRequestAdapter.validate_json(msg.data))

    async def wait_for(self, kind: str, timeout: float) -> Any:
        async def loop() -> Any:
            while True:
                found = [r for r in self.reports if r.kind == kind]
                if found:
                    return found[0]
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(loop(), timeout)


async def test_fifty_tool_calls_through_the_gateway_then_an_accepted_answer(
    nats_url, gateway, client, fake_model, tmp_path
):
    run_id = "budget-run"
    await client.put_run(run_id, {"agents": [{
        "id": "a1",
        "backend": {"type": "chatcompletion", "model": "m", "base_url": fake_model.base_url,
                    "cwd": "ws"},
    }]})  # fmt: skip
    fake_model.script("m", [*file_work(), answer("All notes written and checked.")])
    nc = await nats.connect(nats_url)
    tap = await Tap(nc).start(respond=True)
    worker = WorkerService(
        nats_url,
        ["chatcompletion"],
        WorkerSettings(
            fetch_timeout=0.5, graceful_timeout=1.0, stream_settings=StreamSettings(memory=True)
        ),  # fmt: skip
    )
    await worker.start()
    try:
        request = make_turn_request("m", fake_model.base_url, run_id=run_id, timeout=300)
        token = client.token(run_id, "a1")  # the turn put_run gave agent1: this one
        assert request.turn_id == client.turn_id(run_id, "a1")
        request = request.model_copy(update={"agent_id": "a1", "token": token})
        js = nc.jetstream()
        await js.publish(
            subjects.turn_subject("chatcompletion"), request.model_dump_json().encode()
        )
        started = time.monotonic()
        submission = await tap.wait_for("workflow_submission", timeout=120)
        elapsed = time.monotonic() - started
    finally:
        await worker.stop()
        await nc.drain()

    assert submission.attempt == 1
    assert [(c.name, c.arguments) for c in submission.calls] == [
        ("new_answer", {"content": "All notes written and checked."})
    ]
    assert [r.kind for r in tap.reports] == ["turn_started", "workflow_submission", "turn_usage"]
    assert worker.turns_done == 1
    sent = fake_model.requests_for("m")
    assert len(sent) == 2 * FILES + 1
    # Every request offered the agent's tools with the workflow tool: nothing was cut short.
    assert all({"new_answer", WRITE, READ} <= {t["function"]["name"] for t in r.tools}
               for r in sent)  # fmt: skip
    # The model read each note back, in order, from the files the gateway wrote.
    results = [m["content"] for m in sent[-1].messages if m["role"] == "tool"]
    assert len(results) == 2 * FILES
    assert results[FILES:] == [f"note {i}" for i in range(FILES)]
    workspace = tmp_path / "runs" / run_id / "ws"
    assert sorted(p.name for p in workspace.iterdir()) == sorted(
        f"note{i}.md" for i in range(FILES)
    )
    # The turn's capability rode on every report and every gateway request.
    assert [r.token for r in tap.reports] == [token] * 3
    kinds = [g.kind for g in tap.gateway_requests]
    assert kinds == ["tool_list_request"] + ["tool_call_request"] * (2 * FILES)
    assert {g.token for g in tap.gateway_requests} == {token}
    print(f"\n{2 * FILES} tool calls + answer through the gateway: {elapsed:.2f} s")


async def test_a_run_with_fifty_tool_calls_completes(stack, gateway, tmp_path):
    stack.fake.script(
        "m1",
        [*file_work(), answer("Twenty-five notes."), vote("agent1", "mine"), text("Final: 25.")],
    )
    config = stack.team(["m1"])
    config["agents"][0]["backend"]["cwd"] = "ws"
    summary = await stack.run("Write and check 25 notes.", config)
    assert summary.status == "completed", summary
    assert summary.final_answer == "Final: 25."
    accepted = stack.kinds("answer_accepted")
    assert len(accepted) == 1
    results = [json.loads(c.text) for c in stack.kinds("chunk") if c.channel == "tool_result"]
    assert [r["name"] for r in results] == [WRITE] * FILES + [READ] * FILES
    assert [r["content"] for r in results[FILES:]] == [f"note {i}" for i in range(FILES)]
    run_id = stack.events[0].run_id
    assert (tmp_path / "runs" / run_id / "ws" / f"note{FILES - 1}.md").read_text() == (
        f"note {FILES - 1}"
    )

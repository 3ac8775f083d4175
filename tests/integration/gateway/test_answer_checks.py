"""Answers' code run against the task's own examples, in the gateway's sandbox.

Real gateway on a real nats-server; the whole-run tests add the orchestrator and a
worker, with the scripted OpenAI fake as every agent's model. The votes go to an answer
whose code fails the task's examples; the answer passing them wins, and a presentation
that breaks the code gives way to the winner's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from gateway_helpers import agent
from massgen_cli.client import follow_run
from massgen_gateway.sandbox import sandbox_available
from massgen_kit.keepalive import request_with_keepalive
from massgen_proto import subjects
from massgen_proto.code_text import task_examples
from massgen_proto.tools import CheckRequest, GatewayReplyAdapter

from tests.support.fakes.openai_server import Step, answer, text, vote

pytestmark = pytest.mark.skipif(not sandbox_available(), reason="bubblewrap is not installed")

TASK = '''Complete this function.

```python
def add(a: int, b: int) -> int:
    """Return the sum of a and b.

    >>> add(1, 2)
    3
    >>> add(-1, 1)
    0
    """
```'''
GOOD = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
BAD = "```python\ndef add(a: int, b: int) -> int:\n    return a - b\n```"


async def _check(client: Any, run: str, code: str, token: str | None = None) -> Any:
    ask = CheckRequest(
        run_id=run, agent_id="a1", label="agent1", phase="coordinate",
        turn_id=client.turn_id(run, "a1"), token=client.token(run, "a1") if token is None else token,
        code=code, examples=task_examples(TASK),
    )  # fmt: skip
    reply = await request_with_keepalive(
        client.nc, subjects.GATEWAY_CHECK, ask.model_dump_json().encode(), timeout=60
    )
    return GatewayReplyAdapter.validate_json(reply)


HOSTILE = {
    "loops": "def add(a, b):\n    while True:\n        pass\n",
    "forks": "import os\ndef add(a, b):\n    while True:\n        os.fork()\n",
    "floods": "def add(a, b):\n    print('x' * 50_000_000)\n    return a + b\n",
    "dials out": (
        "import socket\ndef add(a, b):\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=3)\n    return a + b\n"
    ),
    "eats memory": "def add(a, b):\n    x = bytearray(8 << 30)\n    return a + b\n",
}


async def test_the_gateway_runs_code_against_the_examples_and_contains_it(
    client, gateway, tmp_path
):
    run = "chk1"
    await client.put_run(run, {"agents": [agent("a1")]})
    good = await _check(client, run, GOOD.strip("`").removeprefix("python\n"))
    assert good.kind == "check_result" and (good.check.passed, good.check.total) == (2, 2)
    bad = await _check(client, run, "def add(a, b):\n    return a - b\n")
    assert (bad.check.passed, bad.check.total) == (0, 2)
    assert bad.check.failure == "add(1, 2) gave '-1', expected '3'"

    outside = tmp_path / "written-by-answer"
    writes = f"open({str(outside)!r}, 'w').write('x')\ndef add(a, b):\n    return a + b\n"
    checks = await asyncio.gather(
        *(_check(client, run, code) for code in [*HOSTILE.values(), writes])
    )
    for what, result in zip([*HOSTILE, "writes outside"], checks, strict=True):
        assert result.kind == "check_result", (what, result)
        assert result.check.total == 2, what
        if what != "writes outside":  # the write fails; the definitions still run
            assert result.check.passed == 0, (what, result.check)
    assert not outside.exists()
    # Still serving, and a forged token runs nothing.
    refused = await _check(client, run, "def add(a, b):\n    return a + b\n", token="f" * 32)
    assert refused.kind == "error" and refused.code == "forbidden"
    assert "check refused" in refused.error and "(bad_token)" in refused.error


def _votes_for_agent1(final: str):
    """Every vote goes to agent1; the presentation (offered no tools) says ``final``."""

    def behave(request: dict[str, Any]) -> Step:
        names = {t["function"]["name"] for t in request.get("tools") or ()}
        if "vote" in names:
            return vote("agent1", "agent1 is clearly right")
        return text(final)

    return behave


async def test_the_answer_passing_the_examples_wins_over_the_votes(stack, gateway):
    stack.fake.script("m1", [answer(BAD)])
    stack.fake.script("m2", [answer(GOOD)])
    stack.fake.behave("m1", _votes_for_agent1("unused"))
    stack.fake.behave("m2", _votes_for_agent1(f"Here it is.\n\n{GOOD}"))
    summary = await stack.run(TASK, stack.team(["m1", "m2"]))
    assert summary.status == "completed", summary

    accepted = {e.label: e.check for e in stack.kinds("answer_accepted")}
    assert (accepted["agent1"].passed, accepted["agent2"].passed) == (0, 2)
    consensus = stack.kinds("consensus")[-1]
    assert consensus.votes == {"agent1": 2, "agent2": 0}
    assert consensus.winner_label == "agent2"
    final = stack.kinds("final_answer")[-1]
    assert final.label == "agent2" and not final.fallback and "a + b" in final.content
    # Voters read what the check found under each answer.
    voted = [r for r in stack.fake.requests_for("m1") if "CURRENT ANSWERS" in str(r.messages)]
    prompt = voted[-1].messages[-1]["content"]
    assert (
        "[its code run against the task's examples: 0 of 2 pass; first failure: "
        "add(1, 2) gave '-1', expected '3']" in prompt
    )
    assert "[its code run against the task's examples: 2 of 2 pass]" in prompt


async def test_a_presentation_that_breaks_the_code_gives_way_to_the_answer(stack, gateway):
    broken = "```python\ndef add(a: int, b: int) -> int:\n    return a * b\n```"
    stack.fake.script("m1", [answer(GOOD)])
    stack.fake.script("m2", [answer(GOOD.replace("a + b", "b + a"))])
    stack.fake.behave("m1", _votes_for_agent1(f"Final:\n{broken}"))
    stack.fake.behave("m2", _votes_for_agent1("unused"))
    summary = await stack.run(TASK, stack.team(["m1", "m2"]))
    assert summary.status == "completed", summary

    final = stack.kinds("final_answer")[-1]
    assert final.label == "agent1" and final.fallback
    assert "a + b" in final.content and "a * b" not in final.content
    finished = stack.kinds("run_finished")[-1]
    assert "passes 0 of the task's 2 examples, the answer's 2" in finished.message


def _member(code: str, final: str):
    """Answers ``code`` until its answer is among the current ones, then votes agent1;
    a presentation (offered no tools) says ``final``."""

    def behave(request: dict[str, Any]) -> Step:
        names = {t["function"]["name"] for t in request.get("tools") or ()}
        if not names:
            return text(final)
        if "vote" in names and code in str(request["messages"]):
            return vote("agent1", "agent1 is clearly right", seconds=0.2)
        return answer(code, seconds=0.2)

    return behave


async def test_checks_hold_when_a_gateway_and_an_orchestrator_replica_die(
    stack, gateway, gateway_settings
):
    """Two orchestrator replicas, two gateway replicas. The first check that reaches
    gateway B kills it (no reply, no keep-alive: kill -9), and orchestrator A dies at
    that moment too. The worker asks again (gateway A answers); A's runs are taken
    over; every run completes with the answer that passes the examples."""
    from massgen_gateway.service import GatewayService
    from massgen_orchestrator.service import OrchestratorService
    from massgen_orchestrator.settings import OrchestratorSettings

    second = OrchestratorService(
        OrchestratorSettings(nats_url=stack.nats_url, memory_streams=True, replica="orch-b")
    )
    await second.start()
    doomed = GatewayService(gateway_settings.model_copy(update={"replica": "gw-b"}))
    died = asyncio.Event()

    async def dies_mid_check(msg: Any) -> None:
        died.set()
        await doomed._nc.close()  # type: ignore[union-attr]

    doomed._on_check = dies_mid_check  # type: ignore[method-assign]
    await doomed.start()
    stack.fake.behave("m1", _member(BAD, "unused"))
    stack.fake.behave("m2", _member(GOOD, f"Here it is.\n\n{GOOD}"))
    sinks: list[list[Any]] = [[] for _ in range(6)]
    runs = [
        asyncio.ensure_future(follow_run(stack.nc, TASK, stack.team(["m1", "m2"]), sink.append))
        for sink in sinks
    ]
    try:
        await asyncio.wait_for(died.wait(), 60)
        await stack.orchestrator._nc.close()  # orchestrator A: gone, mid-run
        assert not all(run.done() for run in runs)
        summaries = await asyncio.wait_for(asyncio.gather(*runs), 120)
    finally:
        await second.stop()
        with contextlib.suppress(Exception):
            await doomed.stop()
    assert [s.status for s in summaries] == ["completed"] * 6, summaries
    for summary, sink in zip(summaries, sinks, strict=True):
        assert "a + b" in (summary.final_answer or ""), summary
        assert "a - b" not in (summary.final_answer or ""), summary
        # Every answer was checked, the one gateway B dropped included (asked again).
        checked = {e.label: e.check for e in sink if e.kind == "answer_accepted"}
        assert {label: (c.passed, c.total) for label, c in checked.items() if c} == {
            "agent1": (0, 2), "agent2": (2, 2),
        }, checked  # fmt: skip

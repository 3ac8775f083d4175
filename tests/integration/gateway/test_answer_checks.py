"""Answers' code run against the task's own examples, in the gateway's sandbox.

Real gateway on a real nats-server; the whole-run tests add the orchestrator and a
worker, with the scripted OpenAI fake as every agent's model. The votes go to an answer
whose code fails the task's examples; the answer passing them wins, and a presentation
that breaks the code gives way to the winner's answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gateway_helpers import agent
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

"""A worker's answer check when the gateway fails: asked again once if a replica falls
silent mid-check, left unchecked (never blocking the answer) when none can answer.

Real nats-server; the gateway's side of ``massgen.gateway.check`` is played by plain
subscribers in the gateway's queue group, one that dies mid-check (a keep-alive, then
nothing) and one that answers.
"""

from __future__ import annotations

import asyncio

import nats
import structlog
from massgen_proto import subjects
from massgen_proto.messages import BackendSpec, CodeCheck, TurnRequest
from massgen_proto.tools import KEEPALIVE_HEADER, CheckRequest, CheckResult
from massgen_worker.answer_checks import CHECK_TIMEOUT, GatewayChecker

SILENCE = 0.5


def turn() -> TurnRequest:
    backend = BackendSpec(type="openai", model="m", api_key="k", base_url="http://127.0.0.1:9")
    return TurnRequest(
        run_id="r1", turn_id="t1", agent_id="a", label="agent1", phase="coordinate", number=1,
        answer_set_version=0, backend=backend, messages=[], token="tok", deadline=0.0,
        examples=">>> add(1, 2)\n3\n",
    )  # fmt: skip


async def test_a_gateway_dying_mid_check_is_asked_again(nats_url):
    worker = await nats.connect(nats_url)
    gateway = await nats.connect(nats_url)
    seen: list[CheckRequest] = []

    async def dies_then_answers(msg) -> None:
        seen.append(CheckRequest.model_validate_json(msg.data))
        if len(seen) == 1:  # this replica is killed after its first keep-alive
            await msg.respond(b"", headers={KEEPALIVE_HEADER: "working"})
            return
        reply = CheckResult(check=CodeCheck(passed=1, total=1))
        await msg.respond(reply.model_dump_json().encode())

    await gateway.subscribe(subjects.GATEWAY_CHECK, "gateway", cb=dies_then_answers)
    await gateway.flush()
    try:
        checker = GatewayChecker(worker, turn(), SILENCE, structlog.get_logger())
        found = await checker.check("def add(a, b):\n    return a + b\n")
        assert found == CodeCheck(passed=1, total=1)
        assert len(seen) == 2 and seen[0] == seen[1]  # the same request, with its token
        assert seen[0].token == "tok" and seen[0].examples == ">>> add(1, 2)\n3\n"
    finally:
        await gateway.drain()
        await worker.drain()


async def test_no_gateway_or_one_silent_twice_leaves_the_answer_unchecked(nats_url):
    worker = await nats.connect(nats_url)
    checker = GatewayChecker(worker, turn(), SILENCE, structlog.get_logger())
    try:
        assert await checker.check("def add(a, b):\n    return a + b\n") is None  # nobody
        gateway = await nats.connect(nats_url)
        asked = 0

        async def always_dies(msg) -> None:
            nonlocal asked
            asked += 1
            await msg.respond(b"", headers={KEEPALIVE_HEADER: "working"})

        await gateway.subscribe(subjects.GATEWAY_CHECK, "gateway", cb=always_dies)
        await gateway.flush()
        started = asyncio.get_running_loop().time()
        assert await checker.check("def add(a, b):\n    return a + b\n") is None
        assert asked == 2  # asked again once, not forever
        # Given up on silence, not after the whole check timeout (a loose bound: CI is busy).
        assert asyncio.get_running_loop().time() - started < CHECK_TIMEOUT / 2
        await gateway.drain()
    finally:
        await worker.drain()

"""A slow tool call is waited for; a gateway that dies mid-call is noticed in seconds.

The gateway sends keep-alives while it works on a request (``tools.KEEPALIVE_SECONDS``);
the worker's request (``massgen_kit.keepalive``) gives up after ``silence`` seconds
without one instead of waiting for the call's whole timeout.
"""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from gateway_helpers import GatewayClient, agent, stdio_tools
from massgen_gateway.service import GatewayService
from massgen_kit.jetstream import StreamSettings, ensure_runs_bucket
from massgen_kit.keepalive import ResponderSilent, request_with_keepalive
from massgen_proto import subjects
from massgen_proto.tools import GatewayReplyAdapter, ToolCallRequest

pytestmark = pytest.mark.timeout(120)


async def test_a_call_longer_than_the_silence_is_answered_and_a_dead_gateway_is_noticed(
    gateway_settings, nats_url
):
    settings = gateway_settings.model_copy(update={"call_timeout": 60.0})
    gateway = GatewayService(settings)
    await gateway.start()
    nc = await nats.connect(nats_url)
    client = GatewayClient(
        nc, await ensure_runs_bucket(nc.jetstream(), StreamSettings(memory=True))
    )
    run_id = "keepalive0000001"
    await client.put_run(run_id, {"agents": [agent("a1", stdio_tools())]})
    await client.list(run_id)  # the server is up

    async def hang(seconds: float, silence: float) -> bytes:
        turn_id, token = await client._caller(run_id, "a1", "coordinate", None, None)
        ask = ToolCallRequest(
            run_id=run_id, agent_id="a1", label="agent1", phase="coordinate", turn_id=turn_id,
            token=token, name="mcp__tools__hang", arguments={"seconds": seconds}, timeout=60,
        )  # fmt: skip
        return await request_with_keepalive(
            nc, subjects.GATEWAY_TOOLS_CALL, ask.model_dump_json().encode(), 60, silence
        )

    try:
        # 5 s of work against 3 s of tolerated silence: the keep-alives carry it.
        started = time.monotonic()
        result = GatewayReplyAdapter.validate_json(await hang(5.0, silence=3.0))
        assert not result.is_error, result
        assert 5.0 <= time.monotonic() - started < 15

        # The replica dies (its connection is gone, no goodbye) while a call runs.
        call = asyncio.create_task(hang(3600.0, silence=3.0))
        await asyncio.sleep(1.0)
        started = time.monotonic()
        await gateway._nc.close()
        with pytest.raises(ResponderSilent):
            await call
        assert time.monotonic() - started < 6  # not the call's 60 s timeout
    finally:
        await nc.close()
        await gateway.stop()

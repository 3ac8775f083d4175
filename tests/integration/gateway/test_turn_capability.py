"""The gateway acts only for the current turn of an agent, on that turn's token.

Real gateway service on a real nats-server; runs are put into the runs bucket as the
orchestrator stores them (``GatewayClient``). A refused request executes nothing: a
refused ``write_file`` creates no file.
"""

from __future__ import annotations

import asyncio

from gateway_helpers import agent
from massgen_proto.ids import turn_token
from structlog.testing import capture_logs

WRITE = "mcp__workspace__write_file"
READ = "mcp__workspace__read_file"


def team() -> dict:
    return {"agents": [agent("a1", cwd="w1"), agent("a2", cwd="w2")]}


def refusals(logs: list[dict]) -> list[tuple]:
    return [
        (e["run_id"], e["agent"], e["turn"], e["reason"])
        for e in logs
        if e["event"] == "tool_request_refused"
    ]


async def test_forged_foreign_and_finished_tokens_are_refused(client, gateway, tmp_path):
    run = "cap1"
    await client.put_run(run, team())
    workspace = tmp_path / "runs" / run / "w1"
    write = {"path": "x.txt", "content": "pwned"}
    turn1 = client.turn_id(run, "a1")
    token1 = client.token(run, "a1")
    assert (await client.list(run)).kind == "tool_list"  # as a worker does: makes the workspace
    assert workspace.is_dir()

    with capture_logs() as logs:
        forged = await client.call(run, WRITE, write, token="f" * 32)
        foreign = await client.call(run, WRITE, write, token=client.token(run, "a2"))
        as_a2 = await client.call(  # a2's identity with a1's turn and token
            run, WRITE, write, "a2", "agent2", turn_id=turn1, token=token1
        )
        no_token = await client.call(run, WRITE, write, token="")
    for result, reason in (
        (forged, "bad_token"), (foreign, "bad_token"), (as_a2, "stale_turn"),
        (no_token, "missing_token"),
    ):  # fmt: skip
        assert result.kind == "tool_result" and result.is_error, result
        assert "tool call refused: " in result.content and f"({reason})" in result.content
    assert not (workspace / "x.txt").exists()
    assert refusals(logs) == [
        (run, "a1", turn1, "bad_token"), (run, "a1", turn1, "bad_token"),
        (run, "a2", turn1, "stale_turn"), (run, "a1", turn1, "missing_token"),
    ]  # fmt: skip
    assert gateway.refusals == 4 and gateway.calls == 0

    # The right token works.
    ok = await client.call(run, WRITE, {"path": "x.txt", "content": "mine"})
    assert not ok.is_error, ok.content
    assert (workspace / "x.txt").read_text() == "mine"

    # The agent's turn changes (a restart): the old token dies with its turn...
    turn2 = await client.new_turn(run, "a1")
    with capture_logs() as logs:
        stale = await client.call(run, WRITE, write, turn_id=turn1, token=token1)
    assert stale.is_error and "(stale_turn)" in stale.content
    assert refusals(logs) == [(run, "a1", turn1, "stale_turn")]
    assert (workspace / "x.txt").read_text() == "mine"
    # ...and the new turn's token works at once, although the cache had the old turn.
    assert client.turn_id(run, "a1") == turn2
    again = await client.call(run, READ, {"path": "x.txt"})
    assert again.content == "mine" and not again.is_error

    # Once the run is over, not even the current turn's token is accepted. (The gateway
    # learns it from its watch of the runs bucket: wait until it has, as a worker's call
    # after the run's end would, instead of racing the watch under load.)
    await client.set_status(run, "completed")
    for _ in range(250):
        cached = gateway._capabilities.caps.get(run)
        if cached is not None and cached.over:
            break
        await asyncio.sleep(0.02)
    with capture_logs() as logs:
        late = await client.call(run, WRITE, write)
    assert late.is_error and "(run_over)" in late.content
    assert refusals(logs) == [(run, "a1", turn2, "run_over")]
    assert (workspace / "x.txt").read_text() == "mine"
    assert gateway.refusals == 6


async def test_tool_list_needs_the_token_too(client, gateway):
    run = "cap2"
    await client.put_run(run, team())
    refused = await client.list(run, token="0" * 32)
    assert refused.kind == "error" and refused.code == "forbidden"
    assert "(bad_token)" in refused.error
    unknown = await client.list("no-such-run")
    assert (
        unknown.kind == "error"
        and unknown.code == "forbidden"
        and "(unknown_run)" in (unknown.error)
    )
    listing = await client.list(run)
    assert listing.kind == "tool_list" and WRITE in {t["function"]["name"] for t in listing.tools}
    # A refused run id that is no subject token is refused, not an error.
    odd = await client.list("a.>", token="x")
    assert odd.kind == "error" and "(unknown_run)" in odd.error


async def test_the_cache_follows_the_runs_bucket(client, gateway):
    """After the first read, a changed turn reaches the cache by the watch: the old token
    is refused from the cache, with no read of the bucket needed."""
    run = "cap3"
    await client.put_run(run, team())
    turn1, token1 = client.turn_id(run, "a1"), client.token(run, "a1")
    assert not (await client.call(run, READ, {"path": "none.txt"})).content.startswith(
        "Error: tool call refused"
    )
    assert gateway._capabilities.caps[run].agents["a1"].turn_id == turn1
    turn2 = await client.new_turn(run, "a1")
    for _ in range(100):
        if gateway._capabilities.caps[run].agents["a1"].turn_id == turn2:
            break
        await asyncio.sleep(0.02)
    assert gateway._capabilities.caps[run].agents["a1"].turn_id == turn2
    cached = gateway._capabilities.caps[run]
    assert cached.agents["a1"].token == turn_token(client.states[run]["secret"], turn2).encode()
    stale = await client.call(run, READ, {"path": "none.txt"}, turn_id=turn1, token=token1)
    assert "(stale_turn)" in stale.content


async def test_after_a_reconnect_every_decision_is_confirmed(client, gateway):
    """The watch may miss writes while the connection is down: after a reconnect the
    cache is dropped and each request is checked against a leader read for a while."""
    run = "cap4"
    await client.put_run(run, team())
    turn1, token1 = client.turn_id(run, "a1"), client.token(run, "a1")
    gateway._capabilities.watch_task.cancel()  # the watch misses what follows
    await gateway._capabilities.watch.close()
    await gateway._on_reconnected()
    assert gateway._capabilities.caps == {}
    first = await client.call(run, READ, {"path": "none.txt"})
    assert "refused" not in first.content
    await client.new_turn(run, "a1")  # not seen by the (stopped) watch
    stale = await client.call(run, READ, {"path": "none.txt"}, turn_id=turn1, token=token1)
    assert "(stale_turn)" in stale.content


async def test_a_replaced_turn_writes_nothing_before_the_watch_catches_up(
    client, gateway, tmp_path
):
    """Tool calls are confirmed against the leader even when the cache allows them: with
    the watch stopped the cache still holds the old turn, yet its token writes nothing."""
    run = "cap5"
    await client.put_run(run, team())
    turn1, token1 = client.turn_id(run, "a1"), client.token(run, "a1")
    ok = await client.call(run, WRITE, {"path": "x.txt", "content": "mine"})
    assert not ok.is_error, ok.content
    gateway._capabilities.watch_task.cancel()  # the cache will not hear of the next turn
    await client.new_turn(run, "a1")
    assert gateway._capabilities.caps[run].agents["a1"].turn_id == turn1
    stale = await client.call(
        run, WRITE, {"path": "x.txt", "content": "late"}, turn_id=turn1, token=token1
    )
    assert stale.is_error and "(stale_turn)" in stale.content
    assert (tmp_path / "runs" / run / "w1" / "x.txt").read_text() == "mine"
    await client.set_status(run, "completed")
    late = await client.call(run, WRITE, {"path": "x.txt", "content": "later"})
    assert late.is_error and "(run_over)" in late.content

"""The orchestrator's watch of the runs bucket keeps delivering when its consumer dies.

Every replica takes over a dead replica's runs through this watch, so a watch that goes
silent strands runs (seen under chaos: a NATS node killed with the watch's ordered
consumer on it). Real nats-server; the watch's consumer is deleted, or the server is
killed with SIGKILL and started again on the same port and store.
"""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from massgen_kit.jetstream import StreamSettings, ensure_runs_bucket
from massgen_orchestrator.store import _STREAM, RunStore

from tests.support.nats_fixture import start_nats_server

pytestmark = pytest.mark.asyncio


async def _watching(url: str) -> tuple[object, RunStore, dict[str, int]]:
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    kv = await ensure_runs_bucket(js, StreamSettings())
    seen: dict[str, int] = {}

    async def on_update(key: str, value: bytes | None, revision: int) -> None:
        seen[key] = revision

    store = RunStore(js, kv)
    await store.watch(on_update)
    return nc, store, seen


async def _until(seen: dict[str, int], key: str, within: float) -> float:
    started = time.monotonic()
    while key not in seen:
        assert time.monotonic() - started < within, f"the watch never delivered {key!r}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_deleted_watch_consumer_is_replaced_and_nothing_is_missed(nats_url):
    nc, store, seen = await _watching(nats_url)
    writer = await nats.connect(nats_url)
    try:
        kv = await writer.jetstream().key_value("massgen_runs")
        await kv.put("before", b"{}")
        await _until(seen, "before", 5)
        # The consumer vanishes (as when the node holding it dies); writes go on.
        await writer.jetstream().delete_consumer(_STREAM, store._follower._sub._consumer)
        for i in range(5):
            await kv.put(f"after-{i}", b"{}")
        for i in range(5):
            await _until(seen, f"after-{i}", 9)
    finally:
        await store.stop()
        await writer.close()
        await nc.close()


async def test_the_watch_survives_nats_killed_and_restarted(tmp_path):
    server = start_nats_server(tmp_path)
    port = server.port
    nc, store, seen = await _watching(server.url)
    try:
        writer = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        kv = await writer.jetstream().key_value("massgen_runs")
        await kv.put("before", b"{}")
        await _until(seen, "before", 5)
        server.kill()
        server = start_nats_server(tmp_path, port=port)
        for i in range(3):
            for _ in range(100):  # the writer reconnects and JetStream recovers its store
                try:
                    await kv.put(f"after-{i}", b"{}")
                    break
                except Exception:  # noqa: BLE001 - not ready yet
                    await asyncio.sleep(0.1)
        for i in range(3):
            await _until(seen, f"after-{i}", 20)
        await writer.close()
    finally:
        await store.stop()
        await nc.close()
        server.stop()

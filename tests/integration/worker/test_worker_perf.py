"""Measurements of the worker's hot paths (printed with -s; generous bounds asserted)."""

from __future__ import annotations

import asyncio
import time

import nats
from massgen_kit.jetstream import StreamSettings, ensure_events_stream
from massgen_proto.events import Chunk
from massgen_proto.messages import Verdict, WorkerReportAdapter
from massgen_proto.subjects import SUBMIT_REPORT, events_filter, events_subject, turn_subject
from massgen_worker import WorkerService, WorkerSettings

from tests.support.fakes import answer
from tests.support.fakes.turns import make_turn_request


async def test_chunk_publish_overhead(nats_url):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_events_stream(js, StreamSettings(memory=True))
    subject = events_subject("perfrun", "stream")
    n = 5000
    started = time.perf_counter()
    for i in range(n):
        event = Chunk(
            run_id="perfrun",
            agent="a",
            label="agent1",
            turn_id="t",
            channel="content",
            text=f"w{i} ",
        )
        await nc.publish(subject, event.model_dump_json().encode())
    await nc.flush()
    per_chunk = (time.perf_counter() - started) / n
    # The stream stores core publishes asynchronously: wait for all of them.
    deadline = time.monotonic() + 10
    while (info := await js.stream_info("MASSGEN_EVENTS")).state.messages < n:
        assert time.monotonic() < deadline, f"only {info.state.messages} of {n} events stored"
        await asyncio.sleep(0.05)
    stored = time.perf_counter() - started
    await nc.drain()
    print(
        f"\nper-chunk publish (build + serialize + publish, flushed): {per_chunk * 1e6:.1f} us;"
        f" all {n} stored after {stored * 1000:.0f} ms"
    )
    assert info.state.messages == n
    assert per_chunk < 500e-6


async def test_three_agents_two_hundred_tokens(nats_url, fake_model):
    nc = await nats.connect(nats_url)

    async def on_report(msg):
        WorkerReportAdapter.validate_json(msg.data)
        await msg.respond(Verdict(status="accepted").model_dump_json().encode())

    await nc.subscribe(SUBMIT_REPORT, cb=on_report)
    service = WorkerService(
        nats_url,
        ["perf"],
        WorkerSettings(stream_settings=StreamSettings(memory=True), fetch_timeout=0.5),
    )
    await service.start()
    js = nc.jetstream()
    requests = []
    for label in ("agent1", "agent2", "agent3"):
        fake_model.script(f"m-{label}", [answer("done", tokens=200)])
        requests.append(
            make_turn_request(f"m-{label}", fake_model.base_url, run_id="perf3", label=label)
        )
    # The worker preloads litellm at start; measure a warm worker.
    from massgen_worker.llm import apreload

    await apreload()
    started = time.time()
    for req in requests:
        await js.publish(turn_subject("perf"), req.model_dump_json().encode())
    sub = await js.subscribe(events_filter("perf3"), ordered_consumer=True)
    chunks = calls = 0
    content: dict[str, str] = {}
    while calls < 3:
        msg = await sub.next_msg(timeout=10)
        if b'"channel":"content"' in msg.data:
            chunks += 1
            event = Chunk.model_validate_json(msg.data)
            content[event.label] = content.get(event.label, "") + event.text
        calls += b'"channel":"tool_call"' in msg.data
    elapsed = time.time() - started
    first = min(r.received_at for r in fake_model.requests) - started
    await sub.unsubscribe()
    t = time.perf_counter()
    await service.stop()
    print(f"\nstop: {time.perf_counter() - t:.2f} s")
    await nc.drain()
    print(
        f"\n3 agents x 200 tokens: {elapsed * 1000:.0f} ms to the 3 tool calls in the events "
        f"stream; publish -> first model request {first * 1000:.1f} ms"
    )
    # 200 pieces each: words, then new_answer's name and arguments in 3 pieces. The
    # words arrive at once here, so they are published in a few batches.
    words = "".join(f"w{i} " for i in range(200 - 4))
    assert content == {label: words for label in ("agent1", "agent2", "agent3")}
    print(f"content events: {chunks} for 3 x {200 - 4} pieces")
    assert chunks <= 3 * 10
    assert elapsed < 10

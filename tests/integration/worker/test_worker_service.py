"""WorkerService against a real nats-server, the scripted fake model and a test responder."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import nats
import pytest
from massgen_kit.jetstream import StreamSettings
from massgen_proto.events import RunEventAdapter
from massgen_proto.messages import (
    CancelTurn,
    TurnStarted,
    Verdict,
    WorkerReportAdapter,
    WorkflowSubmission,
)
from massgen_proto.subjects import (
    SUBMIT_REPORT,
    TURNS_STREAM,
    control_subject,
    events_filter,
    provider_consumer,
    turn_subject,
)
from massgen_worker import WorkerService, WorkerSettings

from tests.support.fakes import answer, hang, text
from tests.support.fakes.turns import make_turn_request

PROVIDER = "fakeprov"


def settings(**kw) -> WorkerSettings:
    base = dict(
        ack_wait=5.0,
        graceful_timeout=2.0,
        request_timeout=2.0,
        retry_base_delay=0.01,
        fetch_timeout=0.5,
        stream_settings=StreamSettings(memory=True),
    )
    base.update(kw)
    return WorkerSettings(**base)


class Responder:
    """Plays the orchestrator: records reports, answers with scripted verdicts."""

    def __init__(self, nc, decide=None):
        self.nc = nc
        self.decide = decide or (lambda report: Verdict(status="accepted"))
        self.reports: list = []
        self.changed = asyncio.Event()

    async def start(self) -> Responder:
        self.sub = await self.nc.subscribe(SUBMIT_REPORT, cb=self._on_report)
        return self

    async def _on_report(self, msg):
        report = WorkerReportAdapter.validate_json(msg.data)
        self.reports.append(report)
        self.changed.set()
        await msg.respond(self.decide(report).model_dump_json().encode())

    async def wait_for(self, predicate, timeout=10.0):
        async def loop():
            while True:
                found = [r for r in self.reports if predicate(r)]
                if found:
                    return found[0]
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(loop(), timeout)


@pytest.fixture
async def nc(nats_url):
    connection = await nats.connect(nats_url)
    yield connection
    await connection.drain()


@pytest.fixture
async def worker(nats_url):
    started: list[WorkerService] = []

    async def make(**kw) -> WorkerService:
        service = WorkerService(nats_url, [PROVIDER], settings(**kw))
        await service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        await service.stop()


async def read_events(js, run_id, expected, timeout=5.0):
    sub = await js.subscribe(events_filter(run_id), ordered_consumer=True)
    events = []
    try:
        while len(events) < expected:
            msg = await sub.next_msg(timeout=timeout)
            events.append(RunEventAdapter.validate_json(msg.data))
    finally:
        await sub.unsubscribe()
    return events


async def wait_until(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


async def queue_empty(js) -> bool:
    info = await js.consumer_info(TURNS_STREAM, provider_consumer(PROVIDER))
    stream = await js.stream_info(TURNS_STREAM)
    return info.num_ack_pending == 0 and info.num_pending == 0 and stream.state.messages == 0


async def test_turn_end_to_end_events_in_order_and_acked(nc, worker, fake_model):
    # 23 pieces: 20 words, then the call (its name, its arguments in 2 pieces).
    fake_model.script("m", [answer("4", tokens=23)])
    responder = await Responder(nc).start()
    service = await worker(chunk_flush_seconds=0)  # every piece its own event
    js = nc.jetstream()
    req = make_turn_request("m", fake_model.base_url)
    published = time.time()
    await js.publish(turn_subject(PROVIDER), req.model_dump_json().encode())

    submission = await responder.wait_for(lambda r: isinstance(r, WorkflowSubmission))
    first_request_latency = fake_model.requests[0].received_at - published
    print(f"\nTurnRequest publish -> first model request: {first_request_latency * 1000:.1f} ms")
    assert submission.calls[0].arguments == {"content": "4"}
    started = responder.reports[0]
    assert isinstance(started, TurnStarted) and started.delivery == 1
    assert started.worker == service.settings.worker_name

    events = await read_events(js, req.run_id, expected=23)
    assert [e.text for e in events[:20]] == [f"w{i} " for i in range(20)]
    assert [(e.kind, getattr(e, "channel", None)) for e in events[20:]] == [
        ("chunk", "answer"),
        ("chunk", "tool_call"),
        ("token_usage", None),
    ]
    assert events[20].text == "4"
    await wait_until(lambda: queue_empty(js))
    assert service.turns_done == 1


async def _answer_messages(nc, worker_service, fake_model, model, text, delay):
    """NATS messages on the run's event subjects while a worker streams one answer."""
    fake_model.script(model, [answer(text, token_delay=delay)])
    req = make_turn_request(model, fake_model.base_url)
    received = []

    async def on_event(msg):
        received.append(msg)

    sub = await nc.subscribe(events_filter(req.run_id), cb=on_event)
    await nc.jetstream().publish(turn_subject(PROVIDER), req.model_dump_json().encode())
    try:
        await wait_until(lambda: any(b'"tool_call"' in m.data for m in received), timeout=20)
        await wait_until(lambda: any(b'"token_usage"' in m.data for m in received), timeout=5)
    finally:
        await sub.unsubscribe()
    events = [RunEventAdapter.validate_json(m.data) for m in received]
    streamed = "".join(e.text for e in events if e.kind == "chunk" and e.channel == "answer")
    return len(received), streamed


async def test_a_streamed_answer_costs_few_nats_messages(nc, worker, fake_model):
    # About 200 pieces: the answer's arguments arrive in 8-character fragments, 2 ms apart.
    text = " ".join(f"t{i:03d}" for i in range(320))
    await Responder(nc).start()
    plain = await worker(chunk_flush_seconds=0)
    before, streamed = await _answer_messages(nc, plain, fake_model, "m-plain", text, 0.002)
    assert streamed == text
    await plain.stop()
    batched = await worker()  # the defaults: 50 ms / 256 characters
    after, streamed = await _answer_messages(nc, batched, fake_model, "m-batched", text, 0.002)
    assert streamed == text
    print(
        f"\nNATS messages per answer of {len(text)} characters in ~200 pieces: "
        f"{before} unbatched, {after} batched"
    )
    assert before >= 200
    assert after <= 20  # 1 600 characters: the first piece, ~7 batches of 256, call, usage


async def test_malformed_request_is_terminated_not_redelivered(nc, worker, fake_model):
    fake_model.script("m", [text("presented")])
    responder = await Responder(nc).start()
    service = await worker(ack_wait=1.0)
    js = nc.jetstream()
    await js.publish(turn_subject(PROVIDER), b'{"kind": "turn_request", "run_id": 1}')
    req = make_turn_request("m", fake_model.base_url, phase="present")
    await js.publish(turn_subject(PROVIDER), req.model_dump_json().encode())
    await responder.wait_for(lambda r: r.kind == "presentation_finished")
    await asyncio.sleep(1.5)  # past ack_wait: a mere nak/no-ack would come back by now
    await wait_until(lambda: queue_empty(js))
    assert [r.kind for r in responder.reports] == ["turn_started", "presentation_finished"]
    assert service.running_turns == []


async def test_stale_at_start_is_acked_without_a_model_call(nc, worker, fake_model):
    responder = await Responder(nc, lambda r: Verdict(status="stale")).start()
    await worker()
    js = nc.jetstream()
    req = make_turn_request("m", fake_model.base_url)
    await js.publish(turn_subject(PROVIDER), req.model_dump_json().encode())
    await responder.wait_for(lambda r: r.kind == "turn_started")
    await wait_until(lambda: queue_empty(js))
    assert fake_model.requests == []


async def test_cancel_on_control_subject_stops_a_hanging_turn(nc, worker, fake_model):
    fake_model.script("m", [hang(30)])
    responder = await Responder(nc).start()
    service = await worker()
    js = nc.jetstream()
    req = make_turn_request("m", fake_model.base_url)
    await js.publish(turn_subject(PROVIDER), req.model_dump_json().encode())
    await wait_until(lambda: fake_model.requests and service.running_turns)
    cancel = CancelTurn(run_id=req.run_id, turn_id=req.turn_id, reason="restart")
    await nc.publish(control_subject(req.run_id), cancel.model_dump_json().encode())
    await wait_until(lambda: not service.running_turns, timeout=3)
    await wait_until(lambda: queue_empty(js), timeout=3)
    assert [r.kind for r in responder.reports] == ["turn_started"]


async def test_stopped_worker_hands_the_turn_to_another(nc, worker, fake_model):
    fake_model.script("m", [hang(30), answer("4")])
    responder = await Responder(nc).start()
    first = await worker(graceful_timeout=0.2, worker_name="first")
    js = nc.jetstream()
    req = make_turn_request("m", fake_model.base_url)
    await js.publish(turn_subject(PROVIDER), req.model_dump_json().encode())
    await wait_until(lambda: fake_model.requests)
    await first.stop()
    await first.stop()  # idempotent
    await worker(worker_name="second")
    submission = await responder.wait_for(lambda r: r.kind == "workflow_submission")
    assert submission.calls[0].name == "new_answer"
    starts = [r for r in responder.reports if r.kind == "turn_started"]
    assert [(s.worker, s.delivery) for s in starts] == [("first", 1), ("second", 2)]
    await wait_until(lambda: queue_empty(js))


async def test_idle_worker_stops_without_waiting_out_its_long_poll(nc, worker, fake_model):
    fake_model.script("m", [answer("4")])
    responder = await Responder(nc).start()
    from massgen_worker.llm import apreload

    await apreload()  # stop() waits for a litellm import still under way; not timed here
    idle = await worker(fetch_timeout=20.0, worker_name="idle")
    await asyncio.sleep(0.2)  # its fetch is now pending on the server
    started = time.monotonic()
    await idle.stop()
    assert time.monotonic() - started < 1.0
    # Its pull request must not capture the next turn: the next worker gets it first time.
    await worker(worker_name="next")
    js = nc.jetstream()
    req = make_turn_request("m", fake_model.base_url)
    await js.publish(turn_subject(PROVIDER), req.model_dump_json().encode())
    await responder.wait_for(lambda r: r.kind == "workflow_submission", timeout=5)
    starts = [(r.worker, r.delivery) for r in responder.reports if r.kind == "turn_started"]
    assert starts == [("next", 1)]


def spawn_worker(nats_url: str, name: str, **env) -> subprocess.Popen:
    environment = {**os.environ, "MASSGEN_WORKER_STREAM_MEMORY": "true", **env}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "massgen_worker",
            "--nats",
            nats_url,
            "--providers",
            PROVIDER,
            "--ack-wait",
            "2",
            "--name",
            name,
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_killed_worker_process_turn_is_redelivered_after_ack_wait(
    nc, nats_url, worker, fake_model
):
    fake_model.script("m", [hang(60), answer("4")])
    responder = await Responder(nc).start()
    process = spawn_worker(nats_url, "doomed")
    try:
        js = nc.jetstream()
        # The process creates the consumer; publishing before it exists is fine (work queue).
        await wait_until(lambda: consumer_exists(js), timeout=30)
        req = make_turn_request("m", fake_model.base_url, timeout=60)
        await js.publish(turn_subject(PROVIDER), req.model_dump_json().encode())
        await wait_until(lambda: fake_model.requests, timeout=30)
        process.kill()  # no nak, no goodbye: only ack_wait brings the turn back
        process.wait(5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    killed_at = time.monotonic()
    await worker(ack_wait=2.0, worker_name="survivor")
    submission = await responder.wait_for(lambda r: r.kind == "workflow_submission", timeout=15)
    assert submission.calls[0].arguments == {"content": "4"}
    starts = [(r.worker, r.delivery) for r in responder.reports if r.kind == "turn_started"]
    assert starts == [("doomed", 1), ("survivor", 2)]
    assert time.monotonic() - killed_at < 10
    await wait_until(lambda: queue_empty(js))


async def test_worker_launched_from_stdin_after_loading(nc, nats_url, fake_model, tmp_path):
    """How ``massgen`` starts its worker before it knows the NATS URL: the process
    loads first, then one JSON line on stdin says where to connect and what to serve."""
    fake_model.script("m", [answer("4")])
    responder = await Responder(nc).start()
    log_file = tmp_path / "worker.log"
    process = subprocess.Popen(  # noqa: ASYNC220 - the test's own child, started once
        [sys.executable, "-m", "massgen_worker", "--launch-from-stdin", "--name", "early"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        launch = {"nats": nats_url, "providers": [PROVIDER], "log_file": str(log_file),
                  "memory_streams": True}  # fmt: skip
        process.stdin.write((json.dumps(launch) + "\n").encode())
        process.stdin.close()
        js = nc.jetstream()
        await wait_until(lambda: consumer_exists(js), timeout=30)
        req = make_turn_request("m", fake_model.base_url)
        await js.publish(turn_subject(PROVIDER), req.model_dump_json().encode())
        submission = await responder.wait_for(lambda r: r.kind == "workflow_submission")
        assert submission.calls[0].arguments == {"content": "4"}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    log = log_file.read_text()  # everything after the launch line goes to the log file
    assert '"event": "worker_started"' in log and '"event": "worker_stopped"' in log
    await wait_until(lambda: queue_empty(js))


def test_worker_not_launched_exits_quietly():
    """stdin closed without a launch line (the command did not need it): exit 0."""
    process = subprocess.run(
        [sys.executable, "-m", "massgen_worker", "--launch-from-stdin"],
        input=b"", capture_output=True, timeout=60,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr.decode()


def test_worker_without_providers_is_a_usage_error():
    process = subprocess.run(
        [sys.executable, "-m", "massgen_worker"], capture_output=True, timeout=60
    )
    assert process.returncode == 2
    assert b"--providers is required" in process.stderr


async def consumer_exists(js) -> bool:
    try:
        await js.consumer_info(TURNS_STREAM, provider_consumer(PROVIDER))
    except Exception:
        return False
    return True


async def test_sigterm_stops_the_process_and_hands_back_its_turn(nc, nats_url, worker, fake_model):
    fake_model.script("m", [hang(60), answer("4")])
    responder = await Responder(nc).start()
    process = spawn_worker(nats_url, "terminated", MASSGEN_WORKER_GRACEFUL_TIMEOUT="0.3")
    try:
        js = nc.jetstream()
        await wait_until(lambda: consumer_exists(js), timeout=30)
        req = make_turn_request("m", fake_model.base_url, timeout=60)
        await js.publish(turn_subject(PROVIDER), req.model_dump_json().encode())
        await wait_until(lambda: fake_model.requests, timeout=30)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 10)
        stderr = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert code == 0, stderr
    assert '"event": "turn_handed_back"' in stderr
    assert '"event": "worker_stopped"' in stderr
    await worker(worker_name="heir")
    await responder.wait_for(lambda r: r.kind == "workflow_submission", timeout=5)
    starts = [(r.worker, r.delivery) for r in responder.reports if r.kind == "turn_started"]
    assert starts == [("terminated", 1), ("heir", 2)]


async def test_claude_web_search_turn_submits_the_answer_with_its_sources(nc, worker):
    from tests.support.fakes.provider_servers import FakeAnthropicServer, anthropic

    source = ("Paris - Encyclopedia", "https://example.org/paris")
    with FakeAnthropicServer() as claude:
        claude.script([anthropic.reply(
            anthropic.web_search("capital of France", [source]),
            anthropic.text("Found it.", cite=source),
            anthropic.tool_use("new_answer", {"content": "Paris"}),
        )])  # fmt: skip
        responder = await Responder(nc).start()
        await worker(chunk_flush_seconds=0)
        req = make_turn_request("m", claude.base_url, question="Capital of France?")
        req = req.model_copy(update={"backend": req.backend.model_copy(update={
            "type": "claude", "model": "claude-sonnet-4-5",
            "params": {"enable_web_search": True}})})  # fmt: skip
        await nc.jetstream().publish(turn_subject(PROVIDER), req.model_dump_json().encode())

        submission = await responder.wait_for(lambda r: isinstance(r, WorkflowSubmission))
        assert submission.calls[0].name == "new_answer"
        assert submission.calls[0].arguments == {
            "content": f"Paris\n\nSources:\n- {source[0]}: {source[1]}"
        }
        body = claude.requests[0].body
        assert {"type": "web_search_20250305", "name": "web_search"} in body["tools"]
        events = await read_events(nc.jetstream(), req.run_id, expected=3)
        texts = [(e.channel, e.text) for e in events if e.kind == "chunk"]
        assert ("reasoning", "\n[web search: capital of France (1 result)]\n") in texts
        claude.assert_complete()

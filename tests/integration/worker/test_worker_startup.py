"""``python -m massgen_worker`` takes its first turn without waiting for ``import litellm``.

The worker process runs with ``-X importtime``-style output (``PYTHONPROFILEIMPORTTIME``)
and unbuffered logs on one pipe, so the order of its imports and its log lines is kept: a
worker serving only OpenAI-protocol providers must log ``worker_started`` and make its
first model request before anything imports litellm. Timings are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import nats
import pytest
from massgen_kit.jetstream import StreamSettings, ensure_events_stream, ensure_turns_stream
from massgen_proto.messages import Verdict, WorkerReportAdapter
from massgen_proto.subjects import SUBMIT_REPORT, turn_subject

from tests.support.fakes import answer
from tests.support.fakes.turns import make_turn_request


class Reports:
    """Plays the orchestrator: accepts every report, records its kind."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.turn_ended = asyncio.Event()

    async def accept(self, msg) -> None:
        kind = WorkerReportAdapter.validate_json(msg.data).kind
        self.kinds.append(kind)
        await msg.respond(Verdict(status="accepted").model_dump_json().encode())
        if kind == "turn_usage":  # a turn's last report: its usage comes after its submission
            self.turn_ended.set()


@pytest.fixture
async def nc(nats_url):
    connection = await nats.connect(nats_url)
    js = connection.jetstream()
    await ensure_turns_stream(js, StreamSettings(memory=True))
    await ensure_events_stream(js, StreamSettings(memory=True))
    yield connection
    await connection.drain()


async def start_and_serve_one_turn(nc, nats_url, fake_model, provider, early):
    """Queue one turn, spawn the worker, and read its output until it has made the model
    request; returns (output lines so far, seconds to worker_started, to the request)."""
    reports = Reports()
    await nc.subscribe(SUBMIT_REPORT, cb=reports.accept)
    fake_model.script("m", [answer("4")])
    request = make_turn_request("m", fake_model.base_url)
    await nc.jetstream().publish(turn_subject(provider), request.model_dump_json().encode())
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1", PYTHONUNBUFFERED="1")
    env.pop("MASSGEN_MODEL_TRANSPORT", None)  # the default transport is what is measured
    args = (["--launch-from-stdin"] if early
            else ["--nats", nats_url, "--providers", provider, "--memory-streams"])  # fmt: skip
    started_at = time.time()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "massgen_worker", *args, "--name", "startup",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    lines: list[bytes] = []
    worker_started = None
    try:
        if early:
            launch = {"nats": nats_url, "providers": [provider], "memory_streams": True}
            process.stdin.write((json.dumps(launch) + "\n").encode())
        process.stdin.close()
        async with asyncio.timeout(60):
            while not fake_model.requests and (line := await process.stdout.readline()):
                lines.append(line)
                if worker_started is None and b"worker_started" in line:
                    worker_started = time.time() - started_at
        assert fake_model.requests, b"".join(lines[-30:]).decode(errors="replace")
        first_request = fake_model.requests[0].received_at - started_at
        # The turn ends before the worker is stopped; its output keeps being read.
        draining = asyncio.create_task(process.stdout.read())
        await asyncio.wait_for(reports.turn_ended.wait(), 30)
        assert reports.kinds == ["turn_started", "workflow_submission", "turn_usage"]
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
    lines += (await draining).splitlines(keepends=True)
    return lines, worker_started, first_request


def imported(lines: list[bytes], module: str) -> bool:
    """Whether an ``import time:`` line of ``module`` (at any depth) is among ``lines``."""
    name = module.encode()
    return any(
        line.startswith(b"import time:") and line.rsplit(b"|", 1)[-1].strip() == name
        for line in lines
    )


@pytest.mark.parametrize("early", [False, True], ids=["command-line", "launch-from-stdin"])
async def test_a_direct_provider_worker_never_waits_for_litellm(nc, nats_url, fake_model, early):
    lines, worker_started, first_request = await start_and_serve_one_turn(
        nc, nats_url, fake_model, "chatcompletion", early
    )
    print(f"\nworker_started {worker_started:.2f} s, first model request {first_request:.2f} s")
    assert worker_started is not None
    assert imported(lines, "massgen_worker.service") and imported(lines, "httpx")
    assert not imported(lines, "litellm")
    assert not imported(lines, "openai")


async def test_a_litellm_provider_loads_it_in_the_background(nc, nats_url, fake_model):
    # A worker serving anthropic imports litellm, but not before it takes turns: its
    # chatcompletion turn (this pool is named anthropic) is served while litellm loads.
    lines, worker_started, first_request = await start_and_serve_one_turn(
        nc, nats_url, fake_model, "anthropic", early=False
    )
    print(f"\nworker_started {worker_started:.2f} s, first model request {first_request:.2f} s")
    assert worker_started is not None
    started = next(i for i, line in enumerate(lines) if b"worker_started" in line)
    assert not imported(lines[:started], "litellm")

"""Start-up of a command's own stack: what it imports, what it starts early, and how it
notices a worker that dies while its first run waits for it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys

import pytest


def _fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_lean_imports_skip_the_unused_extras_and_leave_them_importable():
    out = _fresh(
        "import sys\n"
        "from massgen_kit.runtime import import_lean\n"
        "import_lean('structlog', 'nats', 'nats.js', 'httpx')\n"
        "import nats.aio.transport as t, structlog.dev as d\n"
        "hidden = [m for m in ('aiohttp', 'rich', 'trio', 'click') if m in sys.modules]\n"
        "import aiohttp, rich\n"  # still installed, and importable afterwards
        "print(hidden, t.aiohttp is None, d.rich is None)\n"
    )
    assert out == "[] True True"


def test_the_early_processes_are_stopped_when_the_command_does_not_need_them(monkeypatch):
    from massgen_cli import early_worker

    monkeypatch.setattr(early_worker, "_early", None)
    monkeypatch.setattr(early_worker, "_early_nats", None)
    early_worker.start()
    worker, server = early_worker._early, early_worker._early_nats
    assert worker is not None and server is not None
    server.wait_ready()
    early_worker.discard()
    assert worker.poll() is not None and not server.running
    assert early_worker.take() is None and early_worker.take_nats() is None


@pytest.mark.parametrize("checks", [True, False])
def test_a_worker_that_dies_fails_the_run_waiting_for_it(monkeypatch, tmp_path, checks):
    from massgen_cli import early_worker
    from massgen_cli.embedded import EmbeddedStack, WorkerStartError

    def dying_worker(args, **popen):
        return subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.exit(7)"],
            stdin=popen.get("stdin"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    monkeypatch.setattr(early_worker, "_early", None)
    monkeypatch.setattr(early_worker, "_early_nats", None)
    monkeypatch.setattr(early_worker, "spawn_worker", dying_worker)

    async def scenario() -> None:
        stack = EmbeddedStack(["openai"], log_dir=tmp_path, tools=False, checks=checks)
        try:
            await stack.start(wait_for_workers=False)  # returns before the worker pulls
            # A team without tools waits for no gateway; one starts alongside (for answer
            # checks) only where its sandbox can run, and when a question may need it.
            if checks and shutil.which("bwrap"):
                assert stack._gateway_start is not None  # started, not waited for
            else:
                assert stack.gateway is None and stack._gateway_start is None
            with pytest.raises(WorkerStartError, match="exit code 7"):
                await asyncio.wait_for(stack.guarded(asyncio.sleep(30)), 10)
        finally:
            await stack.stop()

    asyncio.run(scenario())

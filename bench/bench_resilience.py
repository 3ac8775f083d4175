"""Benchmark: the coordination figures of "runs never stall", on the real services.

One process holds a real nats-server, the orchestrator, a worker (default settings)
and the mcp-gateway; the scripted fake model streams 200 words per response at
10 ms per word, so one model phase takes ~2.0 s and a 3-phase run has a critical
path of ~6.0 s.

- **Agreeing team**: three agents that give the same answer. Coordination (first
  ``turn_started`` -> ``final_answer``) against the 6.0 s critical path; target
  <= 1.05x. Also: turns, rejections and agent errors (targets: 5 turns, 0, 0).
- **Failing provider**: the same team with a third agent whose provider answers
  HTTP 500 to every call, against the two healthy agents alone; target <= +1.5 s.
- **Tool loop**: one agent makes 100 workspace tool calls through the gateway (one
  per model response), then answers and votes; target: accepted.
- **Replicas**: 20 concurrent 3-agent runs with 1, 2 and 3 orchestrator replicas in
  this process, default turn timeout; target: all complete, about the same wall time.

    .venv/bin/python bench/bench_resilience.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)

import nats  # noqa: E402
from massgen_cli.client import follow_run  # noqa: E402
from massgen_gateway.service import GatewayService  # noqa: E402
from massgen_gateway.settings import GatewaySettings  # noqa: E402
from massgen_orchestrator.service import OrchestratorService  # noqa: E402
from massgen_orchestrator.settings import OrchestratorSettings  # noqa: E402
from massgen_worker.service import WorkerService  # noqa: E402
from massgen_worker.settings import WorkerSettings  # noqa: E402

from tests.support.fakes.agents import first_votable, offered_tools, study_agent  # noqa: E402
from tests.support.fakes.openai_server import FakeOpenAIServer, answer, error, text, tool_call, vote  # noqa: E402
from tests.support.nats_fixture import start_nats_server  # noqa: E402

TOKENS, DELAY = 200, 0.01
CRITICAL_PATH = 3 * TOKENS * DELAY
SAME = "Canberra is the capital of Australia."
OTHER = "The capital of Australia is Canberra, a planned city."
TOOL_CALLS = 100


class Stack:
    """nats-server, orchestrator replicas, one worker and the gateway, in this process."""

    def __init__(self, folder: Path, replicas: int = 1) -> None:
        self.folder = folder
        self.replicas = replicas
        self.services: list[Any] = []

    async def __aenter__(self) -> Stack:
        self.nats = start_nats_server(self.folder)
        url = self.nats.url
        for i in range(self.replicas):
            settings = OrchestratorSettings(nats_url=url, memory_streams=True, replica=f"o{i}")
            self.services.append(OrchestratorService(settings))
        (self.folder / "home").mkdir(exist_ok=True)
        self.services.append(
            GatewayService(
                GatewaySettings(
                    nats_url=url,
                    workspace_root=str(self.folder / "runs"),
                    home=str(self.folder / "home"),
                    memory_streams=True,
                )  # fmt: skip
            )
        )
        self.services.append(WorkerService(url, ["chatcompletion"], WorkerSettings(concurrency=64)))
        for service in self.services:
            await service.start()
        self.nc = await nats.connect(url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.drain()
        for service in reversed(self.services):
            await service.stop()
        self.nats.stop()

    async def run(
        self, fake: FakeOpenAIServer, models: list[str], **backend: Any
    ) -> tuple[Any, list[Any]]:
        config = {
            "agents": [
                {"id": f"a{i + 1}", "backend": {"type": "chatcompletion", "model": m,
                                                "base_url": fake.base_url, "api_key": "sk-fake",
                                                **backend}}
                for i, m in enumerate(models)
            ]
        }  # fmt: skip
        events: list[Any] = []
        summary = await follow_run(
            self.nc, "What is the capital of Australia?", config, events.append
        )
        return summary, events


def coordination_seconds(events: list[Any]) -> float:
    first = next(e.ts for e in events if e.kind == "turn_started")
    final = next(e.ts for e in events if e.kind == "final_answer")
    return final - first


def tool_worker(request: dict[str, Any]) -> Any:
    """Write and read back files, one tool call per response, until 100 are done; then
    answer, vote, present."""
    done = sum(1 for m in request.get("messages", []) if m.get("role") == "tool")
    tools = offered_tools(request)
    if "new_answer" not in tools and "vote" not in tools:
        return text(f"Final: {SAME}")  # the presentation (workspace tools only)
    first_turn = "vote" not in tools
    if first_turn and done < TOOL_CALLS and "mcp__workspace__write_file" in tools:
        if done % 2 == 0:
            return tool_call("mcp__workspace__write_file", {"path": f"n{done}.md", "content": "x"})
        return tool_call("mcp__workspace__read_file", {"path": f"n{done - 1}.md"})
    if "vote" in tools:
        return vote("agent1", "mine")
    return answer(SAME)


async def main_async() -> str:
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeOpenAIServer(token_delay=DELAY, tokens=TOKENS).start()
        try:
            async with Stack(Path(tmp) / "a") as stack:
                lines += await agreeing_and_failing(stack, fake)
                lines += await tool_loop(stack, fake)
            lines += await replicas(Path(tmp), fake)
        finally:
            fake.stop()
    return "\n".join(lines)


async def agreeing_and_failing(stack: Stack, fake: FakeOpenAIServer) -> list[str]:
    for model in ("s1", "s2", "s3"):
        fake.behave(model, study_agent(SAME, first_votable, presentation=SAME))
    fake.behave("h2", study_agent(OTHER, "agent1"))
    fake.behave("bad", lambda _request: error(500, "upstream exploded"))
    agree, healthy, failing = [], [], []
    for _ in range(3):
        summary, events = await stack.run(fake, ["s1", "s2", "s3"])
        kinds = [e.kind for e in events]
        agree.append((coordination_seconds(events), kinds, summary.status))
        started = time.monotonic()
        summary, _ = await stack.run(fake, ["s1", "h2"])
        healthy.append(time.monotonic() - started)
        started = time.monotonic()
        summary, events = await stack.run(fake, ["s1", "h2", "bad"])
        failing.append((time.monotonic() - started, summary.status))
    coord = statistics.median(a[0] for a in agree)
    kinds = agree[-1][1]
    turns = kinds.count("turn_started")
    rejected = sum(a[1].count("workflow_rejected") for a in agree)
    errors = sum(a[1].count("agent_error") for a in agree)
    extra = statistics.median(f[0] for f in failing) - statistics.median(healthy)
    ok = "✅"
    return [
        "## Runs never stall: agreeing agents, failing providers, tool loops, replicas",
        "",
        f"In one process: a real nats-server, the orchestrator, one worker (default settings), "
        f"the mcp-gateway; the fake model streams {TOKENS} words at {DELAY * 1000:.0f} ms "
        f"(one phase ≈ {TOKENS * DELAY:.1f} s, critical path {CRITICAL_PATH:.1f} s). "
        "Medians of 3 runs. `python bench/run_all.py resilience`.",
        "",
        "| figure | value | target | |",
        "|---|---|---|---|",
        f"| agreeing team (3 identical answers): coordination | {coord:.2f} s "
        f"({coord / CRITICAL_PATH:.3f}×) | ≤ 1.05 × {CRITICAL_PATH:.1f} s | "
        f"{ok if coord <= 1.05 * CRITICAL_PATH else '❌'} |",
        f"| agreeing team: turns / rejected calls / agent errors | {turns} / {rejected} / {errors}"
        f" | 5 / 0 / 0 | {ok if (turns, rejected, errors) == (5, 0, 0) else '❌'} |",
        f"| failing provider (1 of 3 always HTTP 500): extra time vs the 2 healthy alone | "
        f"{extra:+.2f} s ({statistics.median(f[0] for f in failing):.2f} s vs "
        f"{statistics.median(healthy):.2f} s) | ≤ +1.5 s | {ok if extra <= 1.5 else '❌'} |",
    ]


async def tool_loop(stack: Stack, fake: FakeOpenAIServer) -> list[str]:
    fast = FakeOpenAIServer(token_delay=0.0, tokens=None).start()
    try:
        fast.behave("tools", tool_worker)
        started = time.monotonic()
        summary, events = await stack.run(fast, ["tools"], cwd="ws")
        took = time.monotonic() - started
    finally:
        fast.stop()
    calls = sum(1 for e in events if e.kind == "chunk" and e.channel == "tool_result")
    accepted = [e for e in events if e.kind == "answer_accepted"]
    ok = summary.status == "completed" and calls >= TOOL_CALLS and accepted
    return [
        f"| one agent: {TOOL_CALLS} tool calls through the gateway in its first turn, then "
        f"answers | {calls} calls, answer {'accepted' if accepted else 'NOT accepted'}, run "
        f"{summary.status} in {took:.1f} s | accepted | {'✅' if ok else '❌'} |",
    ]


async def replicas(folder: Path, fake: FakeOpenAIServer) -> list[str]:
    fake.behave("r1", study_agent(SAME, "agent1", presentation=SAME))
    fake.behave("r2", study_agent(OTHER, "agent1"))
    fake.behave("r3", study_agent(OTHER + " Indeed.", "agent1"))
    rows = []
    for count in (1, 2, 3):
        async with Stack(folder / f"r{count}", replicas=count) as stack:
            started = time.monotonic()
            results = await asyncio.gather(
                *(stack.run(fake, ["r1", "r2", "r3"]) for _ in range(20))
            )
            took = time.monotonic() - started
        done = sum(1 for summary, _ in results if summary.status == "completed")
        rows.append(f"| 20 concurrent 3-agent runs, {count} orchestrator replica(s), default "
                    f"turn timeout | {done}/20 completed in {took:.1f} s | 20/20 | "
                    f"{'✅' if done == 20 else '❌'} |")  # fmt: skip
    return rows


def main() -> int:
    from massgen_kit.logsetup import configure_logging

    configure_logging("warning", sys.stderr)  # stdout is the Markdown section
    print(asyncio.run(main_async()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

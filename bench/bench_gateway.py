"""mcp-gateway figures: path-check and turn-capability-check cost, and what a tool call
through the gateway adds.

Prints a Markdown section (see bench/run_all.py). The overhead compares the same tool
(``echo`` of tests/support/fakes/mcp_tool_server.py over stdio) called directly with an MCP
client session and through the gateway (NATS request/reply, argument checks, the
gateway's own session to the same kind of server, the capability check on the turn's
token). The capability check (``capability.check``) is timed alone too, against the
capabilities of a real run state (three agents, from the orchestrator's ``new_run``).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)

from massgen_gateway.permissions import AccessLedger, ContextRoot, build_scope  # noqa: E402

CALLS = 400
CHECKS = 20000
TOKEN_BATCHES = 400
TOKEN_BATCH = 500
TOOL_SERVER = ROOT / "tests" / "support" / "fakes" / "mcp_tool_server.py"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench_checks(base: Path) -> list[tuple[str, float]]:
    ws = base / "run" / "workspaces" / "agent1"
    project = base / "project"
    (project / "src" / "pkg").mkdir(parents=True)
    ws.mkdir(parents=True)
    scope = build_scope(
        label="agent1", phase="present", is_winner=True, workspace=str(ws),
        reference=str(base / "run" / "reference"), labels=["agent1", "agent2"],
        context_paths=[ContextRoot(str(project), "write", ("secrets",))], home=str(base),
    )  # fmt: skip
    ledger = AccessLedger(created={str(ws)})
    cases = [
        ("relative write in the workspace", "notes/plan.md", "write"),
        ("absolute read in a context path", str(project / "src" / "pkg" / "mod.py"), "read"),
        ("write in a context path (winner)", str(project / "src" / "pkg" / "new.py"), "write"),
        ("`..` escape (denied)", "../../../../etc/passwd", "read"),
        ("delete with the ledger", "notes/old.md", "delete"),
    ]
    out = []
    for name, raw, access in cases:
        scope.check(raw, access, ledger)
        started = time.perf_counter()
        for _ in range(CHECKS):
            scope.check(raw, access, ledger)
        out.append((name, (time.perf_counter() - started) / CHECKS * 1e6))
    return out


def bench_capability() -> dict[str, list[float]]:
    """µs per ``capability.check``, one sample per batch of ``TOKEN_BATCH`` checks (a
    single check is too short for the clock); also µs to build the capabilities of a
    stored run state (done for each write to a cached run and each leader re-read)."""
    import json

    from massgen_gateway.capability import RunCapabilities, check
    from massgen_orchestrator.coordination import new_run
    from massgen_proto.config import parse_config
    from massgen_proto.ids import turn_token

    config = parse_config({"agents": [
        {"id": f"a{i}", "backend": {"type": "openai", "model": "gpt-test"}} for i in (1, 2, 3)
    ]})  # fmt: skip
    secret = "k" * 32
    state, _ = new_run("bench-run", "a question " * 50, config, [], 1000.0, secret)
    raw = state.model_dump_json().encode()
    caps = RunCapabilities.from_state(json.loads(raw), 1)
    turn = state.agents[1].turn
    assert turn is not None
    good = {"agent_id": "a2", "label": "agent2", "phase": turn.phase, "turn_id": turn.turn_id,
            "token": turn_token(secret, turn.turn_id)}  # fmt: skip
    forged = {**good, "token": "0" * 32}
    assert check(caps, **good) is None and check(caps, **forged) == "bad_token"
    out: dict[str, list[float]] = {"allowed": [], "forged": [], "build": []}
    for name, ask in (("allowed", good), ("forged", forged)):
        for _ in range(TOKEN_BATCHES):
            started = time.perf_counter()
            for _ in range(TOKEN_BATCH):
                check(caps, **ask)
            out[name].append((time.perf_counter() - started) / TOKEN_BATCH * 1e6)
    for _ in range(TOKEN_BATCHES):
        started = time.perf_counter()
        for _ in range(20):
            RunCapabilities.from_state(json.loads(raw), 2)
        out["build"].append((time.perf_counter() - started) / 20 * 1e6)
    out["state_bytes"] = [float(len(raw))]
    return out


async def bench_direct() -> list[float]:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=[str(TOOL_SERVER), "stdio"])
    times = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for _ in range(20):
            await session.call_tool("echo", {"text": "x"})
        for i in range(CALLS):
            started = time.perf_counter()
            await session.call_tool("echo", {"text": f"x{i}"})
            times.append((time.perf_counter() - started) * 1000)
    return times


async def bench_gateway(base: Path) -> list[float]:
    import json

    import nats
    from massgen_gateway.service import GatewayService
    from massgen_gateway.settings import GatewaySettings
    from massgen_kit.jetstream import StreamSettings, ensure_runs_bucket
    from massgen_proto import subjects
    from massgen_proto.config import parse_config
    from massgen_proto.ids import turn_token
    from massgen_proto.tools import ToolCallRequest, ToolListRequest

    from tests.support.nats_fixture import start_nats_server

    server = start_nats_server(base / "nats")
    service = GatewayService(
        GatewaySettings(nats_url=server.url, workspace_root=str(base / "runs"), memory_streams=True)
    )
    await service.start()
    nc = await nats.connect(server.url)
    try:
        kv = await ensure_runs_bucket(nc.jetstream(), StreamSettings(memory=True))
        config = parse_config({"agents": [{"id": "a1", "backend": {
            "type": "chatcompletion", "model": "m", "base_url": "http://127.0.0.1:9/v1",
            "mcp_servers": [{"name": "tools", "type": "stdio", "command": sys.executable,
                             "args": [str(TOOL_SERVER), "stdio"]}]}}]})  # fmt: skip
        secret, turn_id = "k" * 32, "bench-agent1-t1"
        state = {"run_id": "bench", "config": config.model_dump(mode="json"), "secret": secret,
                 "status": "running", "winner_label": None,
                 "agents": [{"agent_id": "a1", "label": "agent1", "turn": {
                     "turn_id": turn_id, "phase": "coordinate"}}]}  # fmt: skip
        await kv.put("bench", json.dumps(state).encode())
        caller = {"run_id": "bench", "agent_id": "a1", "label": "agent1", "phase": "coordinate",
                  "token": turn_token(secret, turn_id)}  # fmt: skip
        ask = ToolListRequest(turn_id=turn_id, **caller)
        listed = await nc.request(
            subjects.GATEWAY_TOOLS_LIST, ask.model_dump_json().encode(), timeout=60
        )
        assert b'"tool_list"' in listed.data, listed.data[:300]  # a refusal would skew it all
        times = []
        for i in range(CALLS + 20):
            call = ToolCallRequest(
                turn_id=turn_id, name="mcp__tools__echo", arguments={"text": f"x{i}"}, **caller
            )
            data = call.model_dump_json().encode()
            started = time.perf_counter()
            reply = await nc.request(subjects.GATEWAY_TOOLS_CALL, data, timeout=30)
            if i >= 20:
                times.append((time.perf_counter() - started) * 1000)
        assert service.refusals == 0 and service.calls == CALLS + 20, (
            service.refusals,
            service.calls,
            reply.data[:300],
        )
        return times
    finally:
        await nc.drain()
        await service.stop()
        server.stop()


def main() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        checks = bench_checks(base)
        capability = bench_capability()
        direct = asyncio.run(bench_direct())
        through = asyncio.run(bench_gateway(base))
    print("## mcp-gateway\n")
    print(f"Path check (`AgentScope.check`, resolve + decide), mean of {CHECKS} checks; "
          "target ≤ 50 µs:\n")  # fmt: skip
    print("| path | µs per check |\n|---|---:|")
    for name, us in checks:
        print(f"| {name} | {us:.1f} |")
    print(f"\nTurn capability check (`capability.check`: the request's turn is the agent's "
          f"current one, its token the turn's HMAC, `hmac.compare_digest`), from the cached "
          f"capabilities; {TOKEN_BATCHES} samples of {TOKEN_BATCH} checks; "
          "target ≤ 0.1 ms (100 µs) added per tool call at p50:\n")  # fmt: skip
    print("| | p50 µs | p99 µs |\n|---|---:|---:|")
    for name, label in (
        ("allowed", "right token (a tool list or file read goes on; a tool call is then "
                    "confirmed by a leader read)"),
        ("forged", "forged token (refused if the leader re-read agrees)"),
        ("build", f"capabilities of a stored run state ({capability['state_bytes'][0] / 1024:.1f} "
                  "KiB JSON: parse + build), per write to a cached run"),
    ):  # fmt: skip
        values = capability[name]
        print(f"| {label} | {statistics.median(values):.2f} | {_pct(values, 0.99):.2f} |")
    print(f"\nTool call `echo` on the same stdio MCP server, {CALLS} sequential calls "
          "(target: ≤ 2 ms added at p50, ≤ 10 ms at p99); the gateway checks each call's "
          "turn token and confirms it with a read of the run's state from the stream "
          "leader (a replaced turn writes nothing):\n")  # fmt: skip
    print("| | p50 ms | p99 ms |\n|---|---:|---:|")
    d50, d99 = statistics.median(direct), _pct(direct, 0.99)
    g50, g99 = statistics.median(through), _pct(through, 0.99)
    print(f"| direct MCP client session | {d50:.2f} | {d99:.2f} |")
    print(f"| through the gateway (NATS request/reply) | {g50:.2f} | {g99:.2f} |")
    print(f"| **added by the gateway** | **{g50 - d50:.2f}** | **{g99 - d99:.2f}** |")


if __name__ == "__main__":
    main()

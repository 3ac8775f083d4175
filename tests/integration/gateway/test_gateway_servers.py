"""The gateway against real MCP servers: naming, filtering, sessions, timeouts, breaker."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from gateway_helpers import agent, fs_server, stdio_tools
from massgen_proto import subjects
from massgen_proto.config import ConfigError, parse_config
from massgen_proto.events import AnswerAccepted, RunEventAdapter, RunFinished


def names(listing) -> list[str]:
    return sorted(t["function"]["name"] for t in listing.tools)


async def test_filesystem_server_over_stdio_works_in_the_workspace(client, gateway, tmp_path):
    await client.put_run("r1", {"agents": [agent("a1", fs_server(tmp_path), cwd="ws1")]})
    listing = await client.list("r1")
    assert listing.kind == "tool_list", listing
    assert "mcp__filesystem__write_file" in names(listing)
    assert "mcp__workspace__read_file" in names(listing)  # cwd set: built-ins offered
    result = await client.call(
        "r1", "mcp__filesystem__write_file", {"path": "hello.txt", "content": "hi"}
    )
    assert not result.is_error, result.content
    workspace = tmp_path / "runs" / "r1" / "ws1"
    assert (workspace / "hello.txt").read_text() == "hi"
    read = await client.call("r1", "mcp__workspace__read_file", {"path": "hello.txt"})
    assert read.content == "hi"
    denied = await client.call(
        "r1", "mcp__filesystem__read_text_file", {"path": str(tmp_path / "home")}
    )
    assert denied.denied and "outside_roots" in denied.content and "agent1" in denied.content


async def test_http_server_tools_are_named_and_filtered(client, http_tools):
    server = {"name": "tools", "type": "streamable-http", "url": http_tools}
    config = {
        "agents": [
            agent("a1", server),
            agent("a2", server, exclude_tools=["hang", "mcp__tools__crash", "probe"]),
            agent("a3", server, allowed_tools=["echo"]),
            # Server level wins over backend level.
            agent(
                "a4", {**server, "allowed_tools": ["mcp__tools__read_path"]}, allowed_tools=["echo"]
            ),
        ]
    }
    await client.put_run("r2", config)
    every = ["mcp__tools__crash", "mcp__tools__echo", "mcp__tools__hang", "mcp__tools__probe",
             "mcp__tools__read_path", "mcp__tools__write_note"]  # fmt: skip
    assert names(await client.list("r2", "a1", "agent1")) == every
    assert names(await client.list("r2", "a2", "agent2")) == [
        "mcp__tools__echo", "mcp__tools__read_path", "mcp__tools__write_note"
    ]  # fmt: skip
    assert names(await client.list("r2", "a3", "agent3")) == ["mcp__tools__echo"]
    assert names(await client.list("r2", "a4", "agent4")) == ["mcp__tools__read_path"]
    result = await client.call("r2", "mcp__tools__echo", {"text": "x"}, "a3", "agent3")
    assert result.content == "echo: x" and not result.is_error
    hidden = await client.call("r2", "mcp__tools__hang", {}, "a3", "agent3")
    assert hidden.is_error and "not available" in hidden.content


async def test_sessions_are_reused_and_closed_when_the_run_finishes(client, gateway, nats_url):
    await client.put_run("r3", {"agents": [agent("a1", stdio_tools())]})
    await client.list("r3")
    first = gateway._runs["r3"].agents["a1"].sessions["tools"]
    for text in ("a", "b"):
        assert (
            await client.call("r3", "mcp__tools__echo", {"text": text})
        ).content == f"echo: {text}"
    assert gateway._runs["r3"].agents["a1"].sessions["tools"] is first
    nc = await nats.connect(nats_url)
    await nc.publish(
        subjects.events_subject("r3", "run"),
        RunFinished(run_id="r3", status="completed").model_dump_json().encode(),
    )
    await nc.drain()
    for _ in range(200):
        if "r3" not in gateway._runs:
            break
        await asyncio.sleep(0.05)
    assert "r3" not in gateway._runs
    for _ in range(200):
        if first._task is not None and first._task.done():
            break
        await asyncio.sleep(0.05)
    assert first._task is not None and first._task.done()


async def test_hung_server_times_out(client):
    await client.put_run("r4", {"agents": [agent("a1", stdio_tools())]})
    result = await client.call("r4", "mcp__tools__hang", {"seconds": 60})
    assert result.is_error and "timed out after 3 s" in result.content


async def test_crashing_server_opens_the_circuit(client):
    await client.put_run("r5", {"agents": [agent("a1", stdio_tools())]})
    contents = [(await client.call("r5", "mcp__tools__crash", {})).content for _ in range(4)]
    assert all("Error" in c for c in contents)
    assert "circuit open after 3 consecutive failures" in contents[3]
    after = await client.call("r5", "mcp__tools__echo", {"text": "x"})
    assert after.is_error and "circuit open" in after.content


async def test_bad_server_entries_give_clear_errors(client):
    bad = {"name": "ghost", "type": "stdio", "command": "/nonexistent/mcp-server"}
    await client.put_run("r6", {"agents": [agent("a1", bad, stdio_tools())]})
    listing = await client.list("r6")
    assert names(listing) and all(n.startswith("mcp__tools__") for n in names(listing))
    assert len(listing.errors) == 1
    assert "ghost" in listing.errors[0] and "agents[0].backend.mcp_servers[0]" in listing.errors[0]
    # A stdio server without a command parses (it may name a catalog entry); with no
    # catalog the gateway says what is missing.
    await client.put_run("r6b", {"agents": [agent("a1", {"name": "x", "type": "stdio"})]})
    missing = await client.list("r6b")
    assert len(missing.errors) == 1 and "needs 'command'" in missing.errors[0]
    with pytest.raises(ConfigError, match="needs 'url'"):
        parse_config({"agents": [agent("a1", {"name": "x", "type": "streamable-http"})]})
    await client.put_run("r7", {"agents": [agent("a1", stdio_tools("workspace"))]})
    reserved = await client.list("r7")
    assert reserved.kind == "error" and "'workspace' is reserved" in reserved.error
    assert "agents[0].backend.mcp_servers[0].name" in reserved.error


async def test_snapshots_by_label_and_final_workspace(client, gateway, nats_url, tmp_path):
    config = {"agents": [agent("alpha", cwd="w-alpha"), agent("beta", cwd="w-beta")],
              "orchestrator": {"context_paths": []}}  # fmt: skip
    await client.put_run("r8", config)
    await client.list("r8", "alpha", "agent1")
    wrote = await client.call(
        "r8", "mcp__workspace__write_file", {"path": "plan.md", "content": "v1"}, "alpha", "agent1"
    )
    assert not wrote.is_error
    nc = await nats.connect(nats_url)
    accepted = AnswerAccepted(
        run_id="r8", agent="alpha", label="agent1", version="agent1.1", content="x"
    )
    await nc.publish(subjects.events_subject("r8", "run"), accepted.model_dump_json().encode())
    await nc.flush()
    reference = tmp_path / "runs" / "r8" / "reference"
    for _ in range(200):
        if (reference / "agent1" / "plan.md").exists():
            break
        await asyncio.sleep(0.05)
    # beta reads alpha's snapshot under its label; the real id is not a folder there.
    seen = await client.call(
        "r8",
        "mcp__workspace__read_file",
        {"path": str(reference / "agent1" / "plan.md")},
        "beta",
        "agent2",
    )
    assert seen.content == "v1"
    by_id = await client.call(
        "r8",
        "mcp__workspace__read_file",
        {"path": str(reference / "alpha" / "plan.md")},
        "beta",
        "agent2",
    )
    assert by_id.denied and "reference_unknown_label" in by_id.content
    finished = RunFinished(run_id="r8", status="completed", winner="alpha")
    await nc.publish(subjects.events_subject("r8", "run"), finished.model_dump_json().encode())
    await nc.drain()
    final = tmp_path / "runs" / "r8" / "final_workspace" / "plan.md"
    for _ in range(200):
        if final.exists():
            break
        await asyncio.sleep(0.05)
    assert final.read_text() == "v1"


async def test_denials_are_run_events(client, nats_url, tmp_path):
    await client.put_run("r9", {"agents": [agent("a1", cwd="w")]})
    nc = await nats.connect(nats_url)
    seen: list = []

    async def collect(msg) -> None:
        seen.append(RunEventAdapter.validate_json(msg.data))

    sub = await nc.subscribe(subjects.events_filter("r9"), cb=collect)
    result = await client.call("r9", "mcp__workspace__read_file", {"path": "/etc/passwd"})
    assert result.denied
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.05)
    await sub.unsubscribe()
    await nc.drain()
    assert [e.kind for e in seen] == ["tool_denied"]
    event = seen[0]
    assert (event.tool, event.path, event.rule, event.label, event.phase) == (
        "mcp__workspace__read_file",
        "/etc/passwd",
        "outside_roots",
        "agent1",
        "coordinate",
    )


def test_run_state_config_round_trips():
    config = parse_config({"agents": [agent("a1", stdio_tools())]})
    assert parse_config(json.loads(config.model_dump_json())) == config

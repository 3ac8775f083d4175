"""A whole run through orchestrator, worker and gateway: the scripted model calls MCP
tools (npm filesystem over stdio, the Python server over streamable-http, a built-in),
gets results and a denial back, answers, votes and presents."""

from __future__ import annotations

import json

from gateway_helpers import fs_server

from tests.support.fakes.openai_server import answer, text, tool_call, vote


async def test_a_turn_uses_mcp_tools_through_the_gateway(stack, gateway, http_tools, tmp_path):
    stack.fake.script(
        "m1",
        [
            tool_call("mcp__filesystem__write_file", {"path": "notes.md", "content": "draft"}),
            tool_call("mcp__tools__echo", {"text": "ping"}),
            tool_call("mcp__workspace__read_file", {"path": "/etc/passwd"}),
            answer("Forty-two."),
            vote("agent1", "mine is fine"),
            tool_call("mcp__workspace__read_file", {"path": "notes.md"}),
            text("Final: forty-two."),
        ],
    )
    config = stack.team(["m1"])
    config["agents"][0]["backend"]["cwd"] = "ws"
    config["agents"][0]["backend"]["mcp_servers"] = [
        fs_server(tmp_path),
        {"name": "tools", "type": "streamable-http", "url": http_tools},
    ]
    summary = await stack.run("question?", config)
    assert summary.status == "completed", summary
    assert summary.final_answer == "Final: forty-two."
    run_id = stack.events[0].run_id

    first = stack.fake.requests_for("m1")[0]
    offered = {t["function"]["name"] for t in first.tools}
    assert {"new_answer", "mcp__filesystem__write_file", "mcp__tools__echo",
            "mcp__workspace__read_file"} <= offered  # fmt: skip

    chunks = stack.kinds("chunk")
    calls = [json.loads(c.text)["name"] for c in chunks if c.channel == "tool_call"]
    results = [json.loads(c.text) for c in chunks if c.channel == "tool_result"]
    assert calls[:3] == [
        "mcp__filesystem__write_file",
        "mcp__tools__echo",
        "mcp__workspace__read_file",
    ]
    by_name = {r["name"]: r["content"] for r in results}
    assert "notes.md" in by_name["mcp__filesystem__write_file"]
    assert by_name["mcp__tools__echo"] == "echo: ping"
    assert "Permission denied" in results[2]["content"] and "outside_roots" in results[2]["content"]
    assert results[-1] == {
        "id": results[-1]["id"],
        "name": "mcp__workspace__read_file",
        "content": "draft",
    }

    denied = stack.kinds("tool_denied")
    assert [(d.tool, d.path, d.rule, d.label) for d in denied] == [
        ("mcp__workspace__read_file", "/etc/passwd", "outside_roots", "agent1")
    ]
    runs = tmp_path / "runs" / run_id
    assert (runs / "ws" / "notes.md").read_text() == "draft"
    assert (runs / "reference" / "agent1" / "notes.md").read_text() == "draft"
    final = runs / "final_workspace" / "notes.md"
    for _ in range(100):
        if final.exists():
            break
        import asyncio

        await asyncio.sleep(0.05)
    assert final.read_text() == "draft"
    # The model saw the results of its calls in the next request.
    second = stack.fake.requests_for("m1")[1]
    assert any(
        m.get("role") == "tool" and "notes.md" in str(m.get("content")) for m in second.messages
    )

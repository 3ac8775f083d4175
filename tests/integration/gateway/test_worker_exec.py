"""A whole run through orchestrator, worker and gateway in which the scripted model
writes code, runs its test with ``execute_command`` in the sandbox, calls a custom
tool, and answers with what it saw."""

from __future__ import annotations

import json

import pytest
from massgen_gateway.sandbox import sandbox_available

from tests.support.fakes.openai_server import answer, text, tool_call, vote

pytestmark = pytest.mark.skipif(not sandbox_available(), reason="bubblewrap is not installed")

TEST = "from calc import add\nassert add(2, 3) == 5\nprint('calc ok')\n"


async def test_a_turn_runs_its_code_and_a_custom_tool(stack, gateway, tmp_path):
    tools = tmp_path / "tools.py"
    tools.write_text(
        "def shout(text: str) -> str:\n"
        '    """Upper-case a text.\n\n    Args:\n        text: What to shout.\n    """\n'
        "    return text.upper()\n"
    )
    stack.fake.script(
        "m1",
        [
            tool_call("mcp__workspace__write_file",
                      {"path": "calc.py", "content": "def add(a, b):\n    return a + b\n"}),
            tool_call("mcp__workspace__write_file", {"path": "test_calc.py", "content": TEST}),
            tool_call("mcp__workspace__execute_command", {"command": "python3 test_calc.py"}),
            tool_call("custom_tool__shout", {"text": "done"}),
            answer("Tested: calc ok."),
            vote("agent1", "tested"),
            text("Final: calc ok."),
        ],
    )  # fmt: skip
    config = stack.team(["m1"])
    backend = config["agents"][0]["backend"]
    backend.update(cwd="ws", enable_mcp_command_line=True,
                   custom_tools=[{"path": str(tools), "function": "shout"}])  # fmt: skip
    summary = await stack.run("add two numbers, tested", config)
    assert summary.status == "completed", summary

    offered = {t["function"]["name"]: t for t in stack.fake.requests_for("m1")[0].tools}
    assert "mcp__workspace__execute_command" in offered
    assert offered["custom_tool__shout"]["function"]["parameters"]["properties"] == {
        "text": {"type": "string", "description": "What to shout."}
    }
    results = {
        r["name"]: r["content"]
        for r in (json.loads(c.text) for c in stack.kinds("chunk") if c.channel == "tool_result")
    }
    assert "Exit code 0" in results["mcp__workspace__execute_command"]
    assert "calc ok" in results["mcp__workspace__execute_command"]
    assert results["custom_tool__shout"] == "DONE"


async def test_a_turn_calls_massgen_sample_tool_named_without_a_path(stack, gateway):
    # As MassGen's *_custom_tool_example_no_path and *_wrong_custom_tool_* examples do:
    # the function by name alone (served from the built-in library), and one that no
    # library has (left out; the run goes on without it).
    stack.fake.script(
        "m1",
        [
            tool_call("custom_tool__two_num_tool", {"x": 123, "y": 456}),
            answer("The sum is 579."),
            vote("agent1", "computed"),
            text("Final: 579."),
        ],
    )
    config = stack.team(["m1"])
    config["agents"][0]["backend"]["custom_tools"] = [
        {"name": ["two_num_tool"], "function": ["two_num_tool"]},
        {"name": "broken", "function": "wrong_two_num_tool"},
    ]
    summary = await stack.run("whats the sum of 123 and 456?", config)
    assert summary.status == "completed", summary
    assert summary.final_answer == "Final: 579."
    offered = {t["function"]["name"] for t in stack.fake.requests_for("m1")[0].tools}
    assert "custom_tool__two_num_tool" in offered and "custom_tool__broken" not in offered
    results = [json.loads(c.text) for c in stack.kinds("chunk") if c.channel == "tool_result"]
    assert results[0]["content"] == "123 + 456 = 579"

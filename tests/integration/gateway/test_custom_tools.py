"""Custom tools (MassGen's ``custom_tools``) through a real gateway on a real nats-server:
the schema comes from the function's signature and docstring, calls return the
function's result, and the function runs in the sandbox, where the gateway's
environment and the rest of the machine are out of its reach.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from gateway_helpers import agent
from massgen_gateway.sandbox import sandbox_available

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not sandbox_available(), reason="bubblewrap (bwrap) is not installed"),
]

SENTINEL = "hunter2-custom-tool-sentinel"

TOOLS = textwrap.dedent(
    '''
    """Tools written against MassGen's result types, plus a few plain ones."""

    import os
    from typing import Literal

    from massgen.tool._result import ExecutionResult, TextContent


    async def two_num_tool(x: int, y: int) -> ExecutionResult:
        """Adds x and y.

        Args:
            x: one addend
            y: the other addend

        Returns:
            their sum, as text
        """
        text = f"{x} plus {y} makes {x + y}"
        return ExecutionResult(output_blocks=[TextContent(data=text)])


    def find_items(
        query: str,
        limit: int = 10,
        mode: Literal["exact", "fuzzy"] = "exact",
        tags: list[str] | None = None,
        api_key: str = "",
        agent_cwd: str = "",
    ) -> dict:
        """Search the catalogue.

        Args:
            query: Text to look for.
            limit: How many items at most,
                counted after filtering.
            mode: Matching mode.
            tags: Only items with these tags.
            api_key: Set by the config.
        """
        print("this goes to stderr, not into the reply")
        with open(os.path.join(agent_cwd, "found.txt"), "w") as out:
            out.write(query)
        return {"query": query, "limit": limit, "mode": mode, "tags": tags,
                "key": api_key, "cwd": agent_cwd}


    def peek() -> dict:
        """Report what a tool can see of the gateway."""
        seen = {"env": dict(os.environ), "ppid": os.getppid(), "pid": os.getpid()}
        for name in (f"/proc/{os.getppid()}/environ", "/proc/1/environ", "/proc/self/environ",
                     "/etc/shadow", OUTSIDE):
            try:
                with open(name, "rb") as f:
                    seen[name] = f.read().decode("utf-8", "replace")
            except OSError as error:
                seen[name] = f"ERROR {error.strerror}"
        try:
            import socket
            socket.create_connection(("127.0.0.1", PORT), timeout=2)
            seen["connect"] = "connected"
        except OSError as error:
            seen["connect"] = f"ERROR {error}"
        return seen


    def broken(n: int) -> str:
        """Always fails."""
        raise ValueError(f"bad n: {n}")
    '''
)


@pytest.fixture
def tool_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NATS_PASSWORD", SENTINEL)
    monkeypatch.setenv("MASSGEN_TEST_SECRET", SENTINEL)
    outside = tmp_path / "outside.txt"
    outside.write_text("top secret")
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    folder = tmp_path / "tools"
    folder.mkdir()
    path = folder / "my_tools.py"
    path.write_text(f"OUTSIDE = {str(outside)!r}\nPORT = {listener.getsockname()[1]}\n" + TOOLS)
    yield path
    listener.close()


def entry(path, **extra):
    return {"path": str(path), **extra}


async def test_schema_from_signature_and_docstring_and_calls(client, tmp_path, tool_file):
    config = {"agents": [agent("a1", cwd="ws", custom_tools=[
        entry(tool_file, name="two_num_tool", function="two_num_tool", category="math"),
        entry(tool_file, function=["find_items", "peek", "broken"],
              preset_args=[{"api_key": "k-123"}, {}, {}]),
    ])]}  # fmt: skip
    await client.put_run("c1", config)
    listing = await client.list("c1")
    assert listing.errors == [], listing.errors
    tools = {t["function"]["name"]: t["function"] for t in listing.tools}
    assert {"custom_tool__two_num_tool", "custom_tool__find_items", "custom_tool__peek",
            "custom_tool__broken"} <= set(tools)  # fmt: skip
    assert tools["custom_tool__two_num_tool"] == {
        "name": "custom_tool__two_num_tool",
        "description": "Adds x and y.",
        "parameters": {
            "type": "object",
            "properties": {
                "x": {"type": "integer", "description": "one addend"},
                "y": {"type": "integer", "description": "the other addend"},
            },
            "required": ["x", "y"],
        },
    }
    assert tools["custom_tool__find_items"]["parameters"] == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Text to look for."},
            "limit": {
                "type": "integer",
                "description": "How many items at most, counted after filtering.",
                "default": 10,
            },
            "mode": {
                "enum": ["exact", "fuzzy"],
                "type": "string",
                "description": "Matching mode.",
                "default": "exact",
            },
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Only items with these tags.",
                "default": None,
            },
        },
        "required": ["query"],
    }  # fmt: skip  (api_key is preset, agent_cwd is the gateway's: neither is shown)

    result = await client.call("c1", "custom_tool__two_num_tool", {"x": 2, "y": 3})
    assert not result.is_error and result.content == "2 plus 3 makes 5"

    result = await client.call("c1", "custom_tool__find_items", {"query": "lamp", "tags": ["a"]})
    assert not result.is_error, result.content
    found = json.loads(result.content)
    ws = tmp_path / "runs" / "c1" / "ws"
    assert found == {"query": "lamp", "limit": 10, "mode": "exact", "tags": ["a"],
                     "key": "k-123", "cwd": str(ws.resolve())}  # fmt: skip
    assert (ws / "found.txt").read_text() == "lamp"  # it runs in the agent's workspace

    failed = await client.call("c1", "custom_tool__broken", {"n": 7})
    assert failed.is_error and "ValueError: bad n: 7" in failed.content
    wrong = await client.call("c1", "custom_tool__two_num_tool", {"x": 1, "z": 2})
    assert wrong.is_error and "unexpected argument(s): z" in wrong.content
    unknown = await client.call("c1", "custom_tool__nope", {})
    assert unknown.is_error and "not available" in unknown.content


async def test_a_custom_tool_sees_nothing_of_the_gateway(client, tmp_path, tool_file):
    await client.put_run("c2", {"agents": [agent("a1", cwd="ws", custom_tools=[
        entry(tool_file, function="peek")])]})  # fmt: skip
    await client.list("c2")
    result = await client.call("c2", "custom_tool__peek", {})
    assert not result.is_error, result.content
    assert SENTINEL not in result.content and "top secret" not in result.content
    seen = json.loads(result.content)
    assert not any(key.startswith(("NATS", "MASSGEN")) for key in seen["env"]), seen["env"]
    assert seen["/etc/shadow"].startswith("ERROR")
    assert seen[str(tmp_path / "outside.txt")].startswith("ERROR")
    assert seen["connect"].startswith("ERROR")
    assert seen["pid"] != os.getpid() and seen["ppid"] != os.getpid()


async def test_custom_tool_problems_are_reported_by_key(client, tmp_path, tool_file):
    await client.put_run("c3", {"agents": [agent("a1", cwd="ws", custom_tools=[
        entry(tool_file, function="missing_function"),
        entry(tmp_path / "nowhere.py", function="f"),
    ])]})  # fmt: skip
    listing = await client.list("c3")
    text = " ".join(listing.errors)
    assert "custom_tool__missing_function" in text and "defines no function" in text
    assert "agents[0].backend.custom_tools[0]" in text
    assert "no such file" in text and "agents[0].backend.custom_tools[1]" in text
    assert not any(t["function"]["name"].startswith("custom_tool__") for t in listing.tools)


async def test_massgen_library_tools_without_a_path(client):
    # MassGen's examples name its sample tool by function alone or by MassGen's path;
    # a function the library lacks is left out with a problem (MassGen logs and skips).
    await client.put_run("c4", {"agents": [agent("a1", cwd="ws", custom_tools=[
        {"name": ["two_num_tool"], "function": ["two_num_tool"]},
        {"name": "sum", "function": "two_num_tool", "path": "massgen/tool/_basic/_two_num_tool.py"},
        {"name": "wrong", "function": "wrong_two_num_tool"},
    ])]})  # fmt: skip
    listing = await client.list("c4")
    names = {t["function"]["name"] for t in listing.tools}
    assert {"custom_tool__two_num_tool", "custom_tool__sum"} <= names
    assert "custom_tool__wrong" not in names
    assert len(listing.errors) == 1, listing.errors
    assert "'wrong_two_num_tool' is not in the built-in tool library" in listing.errors[0]
    assert "agents[0].backend.custom_tools[2]" in listing.errors[0]
    for name in ("custom_tool__two_num_tool", "custom_tool__sum"):
        result = await client.call("c4", name, {"x": 123, "y": 456})
        assert not result.is_error and result.content == "123 + 456 = 579"
    wrong = await client.call("c4", "custom_tool__wrong", {"x": 1, "y": 2})
    assert wrong.is_error and "not in the built-in tool library" in wrong.content

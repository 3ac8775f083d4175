"""Commands (``mcp__workspace__execute_command``) through a real gateway on a real
nats-server, in the real bubblewrap sandbox: agents run what they write, and hostile
commands are contained or refused with a reason, with nothing outside the workspace
changed.

One run per test: agent1 (``a1``) has the workspace ``ws`` and runs commands; agent2
(``a2``) has a workspace holding a secret; the test folder has an ``outside`` folder
with a secret and a read-only context path ``ctx``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from gateway_helpers import agent
from massgen_gateway import exec_calls
from massgen_gateway.sandbox import sandbox_available

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not sandbox_available(), reason="bubblewrap (bwrap) is not installed"),
]

RUN = "mcp__workspace__execute_command"
SENTINEL = "hunter2-exec-sentinel"
ESCAPE = Path("/usr/local") / f"massgen-exec-escape-{os.getpid()}.txt"


@pytest.fixture
def gateway_settings(gateway_settings):
    # Short limits so the hostile cases end quickly.
    return gateway_settings.model_copy(
        update={"exec_timeout": 4.0, "exec_output_bytes": 4_000, "exec_max_processes": 64}
    )


@pytest.fixture
def world(tmp_path, monkeypatch):
    """The folders around the run, and a secret in the gateway's environment."""
    monkeypatch.setenv("NATS_PASSWORD", SENTINEL)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "data.csv").write_text("a,b\n1,2\n")
    return tmp_path, outside, ctx


def pgrep(pattern: str) -> str:
    """Host processes whose command line matches (empty: none)."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return found.stdout.strip()


def fingerprint(root: Path, skip: Path) -> dict[str, str]:
    """Every path under ``root`` (outside ``skip``) with a hash of its content."""
    seen: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        if path.is_symlink():
            seen[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            seen[str(path)] = "dir"
    return seen


async def start(client, world, run_id: str, **backend):
    tmp_path, _, ctx = world
    config = {
        "agents": [
            agent("a1", cwd="ws", enable_mcp_command_line=True, **backend),
            agent("a2", cwd="ws2"),
        ],
        "orchestrator": {"context_paths": [{"path": str(ctx), "permission": "read"}]},
    }
    await client.put_run(run_id, config)
    ws = tmp_path / "runs" / run_id / "ws"
    ws2 = tmp_path / "runs" / run_id / "ws2"
    ws2.mkdir(parents=True)
    (ws2 / "secret.txt").write_text("agent2's secret")
    await client.list(run_id)  # as a worker does first: the workspace is made
    return ws


async def run(client, run_id: str, command: str, **extra):
    result = await client.call(run_id, RUN, {"command": command, **extra})
    return result


async def test_the_tool_is_offered_only_when_enabled(client, world):
    tmp_path, _, ctx = world
    await client.put_run("off", {"agents": [agent("a1", cwd="ws")]})
    names = [t["function"]["name"] for t in (await client.list("off")).tools]
    assert RUN not in names
    assert {"mcp__workspace__compare_files", "mcp__workspace__compare_directories"} <= set(names)
    refused = await client.call("off", RUN, {"command": "true"})
    assert refused.is_error and "not available" in refused.content
    await start(client, world, "on")
    names = [t["function"]["name"] for t in (await client.list("on")).tools]
    assert RUN in names
    # MassGen's own name for the tool in exclude_tools hides it as well.
    hidden = agent("a1", cwd="ws", enable_mcp_command_line=True,
                   exclude_tools=["mcp__command_line__execute_command"])  # fmt: skip
    await client.put_run("ex", {"agents": [hidden]})
    names = [t["function"]["name"] for t in (await client.list("ex")).tools]
    assert RUN not in names and "mcp__workspace__read_file" in names


async def test_an_agent_runs_the_code_it_wrote_and_its_tests(client, world):
    ws = await start(client, world, "r1")
    write = await client.call("r1", "mcp__workspace__write_file", {
        "path": "calc.py", "content": "def add(a, b):\n    return a + b\n"})  # fmt: skip
    assert not write.is_error, write.content
    await client.call("r1", "mcp__workspace__write_file", {
        "path": "test_calc.py",
        "content": "import unittest\nfrom calc import add\n\n"
                   "class T(unittest.TestCase):\n    def test_add(self):\n"
                   "        self.assertEqual(add(2, 3), 5)\n\n"
                   "if __name__ == '__main__':\n    unittest.main()\n"})  # fmt: skip
    result = await run(client, "r1", "python3 -m unittest -v test_calc 2>&1; echo done > out.txt")
    assert not result.is_error, result.content
    assert "Exit code 0" in result.content and "test_add" in result.content
    assert "OK" in result.content
    assert (ws / "out.txt").read_text() == "done\n"
    # The context path is readable; a sub-folder of the workspace can be the work_dir.
    (ws / "sub").mkdir()
    result = await run(client, "r1", "pwd; cat " + str(world[2] / "data.csv"), work_dir="sub")
    assert str(ws / "sub") in result.content and "1,2" in result.content
    failing = await run(client, "r1", "exit 3")
    assert "Exit code 3" in failing.content and not failing.is_error
    # The comparison tools work on what the commands produced, under the same checks.
    await run(client, "r1", "sed 's/a + b/b + a/' calc.py > calc2.py")
    diff = await client.call("r1", "mcp__workspace__compare_files",
                             {"file1": "calc.py", "file2": "calc2.py"})  # fmt: skip
    assert "-    return a + b" in diff.content and "+    return b + a" in diff.content
    denied = await client.call("r1", "mcp__workspace__compare_directories",
                               {"dir1": ".", "dir2": str(world[1])})  # fmt: skip
    assert denied.denied and "outside_roots" in denied.content


HOSTILE = [
    # (name, command, a phrase the output must hold)
    ("shadow", "cat /etc/shadow", "No such file"),
    ("root_home", "ls /root", "No such file"),
    ("dotdot_other_agent", "cat ../ws2/secret.txt", "No such file"),
    ("absolute_outside", "cat {outside}/secret.txt", "No such file"),
    ("write_outside", "echo pwn > {outside}/pwn.txt", ""),
    ("write_dotdot", "echo pwn > ../escape.txt; echo pwn > ../../escape.txt", ""),
    ("write_system", "echo pwn > " + str(ESCAPE) + "; touch /etc/pwn /usr/pwn", "Read-only"),
    ("write_context", "echo pwn >> {ctx}/data.csv", "Read-only"),
    ("symlink_out", "ln -s {outside}/secret.txt link && cat link", "No such file"),
    ("symlink_write", "ln -s {outside} out && echo pwn > out/pwn.txt", ""),
    ("proc_environ", "cat /proc/1/environ /proc/self/environ; env", ""),
    ("gateway_proc", "ls /proc | head -50", ""),
]


@pytest.mark.parametrize(("name", "command", "expect"), HOSTILE, ids=[c[0] for c in HOSTILE])
async def test_hostile_commands_touch_nothing_outside_the_workspace(
    client, world, name, command, expect
):
    tmp_path, outside, ctx = world
    ws = await start(client, world, "h1")
    before = fingerprint(tmp_path, ws)
    text = command.format(outside=outside, ctx=ctx)
    result = await run(client, "h1", text)
    assert "Exit code" in result.content or "Killed" in result.content, result.content
    if expect:
        assert expect in result.content, result.content
    assert "top secret" not in result.content and "agent2's secret" not in result.content
    assert SENTINEL not in result.content and "NATS_" not in result.content
    assert fingerprint(tmp_path, ws) == before  # nothing outside the workspace changed
    assert not ESCAPE.exists()
    if name == "gateway_proc":  # a PID namespace: the gateway's process is not there
        assert str(os.getpid()) not in result.content.split()


async def test_no_network(client, world):
    await start(client, world, "n1")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        script = (
            "import socket\ns = socket.socket()\ns.settimeout(2)\n"
            f"s.connect(('127.0.0.1', {port}))\nprint('CONN' + 'ECTED')\n"
        )
        result = await run(client, "n1", f'python3 -c "{script}"')
        assert "CONNECTED" not in result.content and "Error" in result.content, result.content
        curls = (
            f"curl -sS -m 2 http://127.0.0.1:{port}/ 2>&1; echo rc1=$?; "
            "curl -sS -m 2 http://example.com/ 2>&1; echo rc2=$?"
        )
        result = await run(client, "n1", curls)
        assert "rc1=" in result.content and "rc2=" in result.content, result.content
        assert "rc1=0" not in result.content and "rc2=0" not in result.content
    finally:
        listener.close()


def _use_settings(gateway, **update) -> None:
    gateway.settings = gateway.settings.model_copy(update=update)
    for run_tools in gateway._runs.values():
        run_tools.settings = gateway.settings


async def test_network_only_when_the_config_asks_and_the_gateway_allows(client, world, gateway):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    connect = (
        'python3 -c "import socket; s = socket.socket(); s.settimeout(2); '
        f"s.connect(('127.0.0.1', {port})); print('CONN' + 'ECTED')\""
    )
    try:
        # Asked for, not allowed (a shared deployment's default): refused, with the reason.
        await start(client, world, "b1", command_line_docker_network_mode="bridge")
        refused = await run(client, "b1", connect)
        assert refused.is_error and "CONNECTED" not in refused.content
        assert "agents[0].backend.command_line_docker_network_mode: 'bridge'" in refused.content
        assert "MASSGEN_GATEWAY_EXEC_NETWORK" in refused.content
        # Allowed (the CLI's own stack): the command reaches a server on the host...
        _use_settings(gateway, exec_network=True)
        ws = await start(client, world, "b2", command_line_docker_network_mode="bridge")
        reached = await run(client, "b2", connect)
        assert "Exit code 0" in reached.content and "CONNECTED" in reached.content
        # ... and is sandboxed all the same: only its workspace is writable.
        tmp_path, outside, _ = world
        escape = await run(client, "b2", f"echo x > {outside}/secret.txt; cat /etc/shadow")
        assert "Exit code 0" not in escape.content
        assert (outside / "secret.txt").read_text() == "top secret"
        assert ws.is_dir()
        # An agent that does not ask stays offline even on that gateway.
        await start(client, world, "b3")
        offline = await run(client, "b3", connect)
        assert "CONNECTED" not in offline.content
    finally:
        listener.close()


async def test_runaway_commands_are_killed(client, world):
    tmp_path, _, _ = world
    ws = await start(client, world, "k1")
    before = fingerprint(tmp_path, ws)
    started = time.monotonic()
    loop = await run(client, "k1", "while true; do :; done")
    assert loop.is_error and "Killed after 4 s (timeout)" in loop.content
    assert time.monotonic() - started < 15
    # The argument can only shorten the gateway's limit.
    short = await run(client, "k1", "sleep 30", timeout=1)
    assert "Killed after 1 s" in short.content
    longer = await run(client, "k1", "sleep 30", timeout=600)
    assert "Killed after 4 s" in longer.content
    # A fork bomb: the process limit stops it, the timeout ends it, nothing survives it.
    bomb = await run(client, "k1", "bomb() { bomb | bomb & }; bomb; sleep 2; echo survived")
    assert "Exit code" in bomb.content or "Killed" in bomb.content
    python_bomb = await run(client, "k1", "python3 -c 'import os\nwhile True: os.fork()'")
    assert any(
        words in python_bomb.content for words in ("Resource temporarily unavailable", "Killed")
    )
    # A background process does not outlive its call.
    marker = f"massgen-orphan-{os.getpid()}"
    bg = await run(client, "k1", f"(exec -a {marker} sleep 300) > /dev/null 2>&1 & echo started")
    assert "started" in bg.content
    await asyncio.sleep(0.5)
    assert await asyncio.to_thread(pgrep, marker) == ""
    await asyncio.to_thread(subprocess.run, ["true"], check=True)  # the host still forks
    assert fingerprint(tmp_path, ws) == before


async def test_huge_output_is_cut_and_big_files_are_refused(client, world):
    ws = await start(client, world, "o1")
    flood = await run(client, "o1", "head -c 50000000 /dev/zero | tr '\\0' a; echo; echo END")
    assert "Exit code 0" in flood.content
    assert "bytes omitted" in flood.content and "END" in flood.content  # head and tail kept
    assert len(flood.content) < 12_000
    endless = await run(client, "o1", "yes")
    assert "Killed after 4 s" in endless.content and len(endless.content) < 12_000
    big = await run(client, "o1", "head -c 400000000 /dev/zero > big.bin; ls -l big.bin")
    assert "File size limit exceeded" in big.content or "Exit code" in big.content
    assert (ws / "big.bin").stat().st_size <= 256 << 20  # RLIMIT_FSIZE


async def test_command_filters_follow_massgen(client, world):
    await start(client, world, "f1", command_line_allowed_commands=["python3 .*", "echo .*"],
                command_line_blocked_commands=["echo secret.*"])  # fmt: skip
    ok = await run(client, "f1", "echo hello")
    assert "hello" in ok.content and not ok.is_error
    refused = await run(client, "f1", "ls -la")
    assert refused.is_error and "matches none of the allowed patterns" in refused.content
    assert "'python3 .*'" in refused.content
    blocked = await run(client, "f1", "echo secret stuff")
    assert blocked.is_error and "blocked pattern 'echo secret.*'" in blocked.content
    # The work_dir is a checked path like any other.
    denied = await run(client, "f1", "echo hi", work_dir="../ws2")
    assert denied.denied and "outside_roots" in denied.content


async def test_without_bubblewrap_commands_are_refused_unless_allowed(
    client, world, gateway, monkeypatch
):
    monkeypatch.setattr(exec_calls, "sandbox_available", lambda: False)
    await start(client, world, "u1")
    refused = await run(client, "u1", "echo hi")
    assert refused.is_error
    assert "bubblewrap (bwrap), the gateway's sandbox, is not installed" in refused.content
    assert "MASSGEN_GATEWAY_UNSANDBOXED_EXEC" in refused.content
    # A deployment on the user's own machine may allow MassGen's local mode.
    gateway.settings = gateway.settings.model_copy(update={"unsandboxed_exec": True})
    for run_tools in gateway._runs.values():
        run_tools.settings = gateway.settings
    ws = await start(client, world, "u2")
    local = await run(client, "u2", "echo hi > f.txt; pwd; env")
    assert "Exit code 0" in local.content and (ws / "f.txt").read_text() == "hi\n"
    assert SENTINEL not in local.content
    danger = await run(client, "u2", "sudo ls")
    assert danger.is_error
    assert "'sudo' is not allowed for commands run on the host" in danger.content
    # ... but not for an agent that asks for isolation.
    await start(client, world, "u3", command_line_execution_mode="docker")
    isolated = await run(client, "u3", "echo hi")
    assert isolated.is_error and "command_line_execution_mode: docker" in isolated.content


async def test_other_runs_stay_hidden_under_a_wide_context_path(client, world):
    # A context path holding the workspaces root (the default root sits in the project
    # folder) shows the project, but not the runs' workspaces in it.
    tmp_path, _, _ = world
    other = tmp_path / "runs" / "other-run" / "ws"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("another run's secret")
    config = {
        "agents": [agent("a1", cwd="ws", enable_mcp_command_line=True)],
        "orchestrator": {"context_paths": [{"path": str(tmp_path), "permission": "read"}]},
    }
    await client.put_run("w1", config)
    await client.list("w1")
    result = await run(client, "w1", f"ls {tmp_path}; cat {other}/secret.txt; ls {tmp_path}/runs")
    assert "outside" in result.content and "ctx" in result.content  # the context path shows
    assert "another run's secret" not in result.content and "No such file" in result.content
    stdout = result.content.split("--- stdout ---")[1].split("--- stderr ---")[0]
    assert "other-run" not in stdout and "w1" in stdout  # only this run's own folder
    write = await run(client, "w1", "echo mine > mine.txt && cat mine.txt")
    assert "mine" in write.content and "Exit code 0" in write.content


def test_without_a_fresh_proc_the_sandbox_gets_an_empty_one_never_the_gateways(monkeypatch):
    """In a pod whose /proc is masked (Kubernetes' default), bubblewrap may not mount a
    new procfs: the sandbox then has an empty /proc, not a view of the gateway's."""
    import subprocess

    from massgen_gateway import sandbox

    if not sandbox.sandbox_available():
        pytest.skip("bubblewrap is not installed")
    monkeypatch.setattr(sandbox, "fresh_proc", lambda: False)
    line = sandbox.confined(
        ["/bin/sh", "-c", "ls -A /proc | wc -l; cat /proc/1/environ 2>&1 | head -c 80"],
        mounts=[], workdir="/tmp", env={}, tmp_bytes=1 << 20,
    )  # fmt: skip
    done = subprocess.run(line, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    count, _, rest = done.stdout.partition("\n")
    assert count.strip() == "0" and "No such file" in rest, done.stdout

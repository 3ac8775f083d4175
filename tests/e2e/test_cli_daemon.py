"""The warm stack started on first use: in a terminal, a command that finds none starts
one in the background; the next command runs on it; it stops when unused, is replaced
when the code changes, and leaves nothing behind when killed.

Every test runs the real ``massgen`` (in tmux where a terminal is needed) with its own
HOME, so the stack's state lives in ``<tmp>/home/.massgen``. The root conftest sets
``MASSGEN_NO_DAEMON=1`` for every test; these tests remove it from the command's
environment. Each stops what its commands started (by the pids in the state file).

The code fingerprint is pinned with ``MASSGEN_CODE_FINGERPRINT``: edits made elsewhere
in the tree while a test runs would otherwise (rightly) replace its stack. The test of
replacement changes it between commands, as an upgrade would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Cli, Tmux, descendants, team_config, wait_for
from massgen_cli.warm import pid_alive

from tests.support.fakes.agents import study_agent

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


def _state_path(cli: Cli) -> Path:
    return Path(cli.env["HOME"]) / ".massgen" / "stack.json"


def _state(cli: Cli) -> dict[str, Any] | None:
    try:
        return json.loads(_state_path(cli).read_text())
    except (OSError, ValueError):
        return None


def _ready(cli: Cli, timeout: float = 90) -> dict[str, Any]:
    """The state of the warm stack once it is ready."""
    return wait_for(lambda: (s := _state(cli)) and s.get("ready") and s, timeout, "a ready stack")


def _processes(state: dict[str, Any]) -> set[int]:
    """The stack's processes: the recorded ones and every descendant of its daemon."""
    pids = {int(p) for p in state["pids"].values()}
    return pids | set(descendants(int(state["pid"])))


def _gone(pids: set[int], timeout: float, what: str) -> None:
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout, what)


class Terminals:
    """Commands run in terminals (one private tmux server each), stopped at the end."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli
        self.opened: list[Tmux] = []

    def run(self, *args: str, expect: str = "EXITED 0", timeout: float = 120) -> str:
        """Run ``massgen ARGS`` in a new terminal to its end; its last screen."""
        return self.start(*args).wait(expect, timeout=timeout)

    def start(self, *args: str) -> Tmux:
        tmux = Tmux(self.cli)
        self.opened.append(tmux)
        tmux.start(*args)
        return tmux

    def close(self) -> None:
        for tmux in self.opened:
            tmux.stop()


@pytest.fixture
def daemon_cli(cli: Cli) -> Iterator[Cli]:
    """``cli`` allowed to start the background stack; whatever it started is stopped."""
    cli.env.pop("MASSGEN_NO_DAEMON", None)
    cli.env["MASSGEN_CODE_FINGERPRINT"] = "code-1"
    yield cli
    state = _state(cli)
    processes = _processes(state) if state and state.get("pids") else set()
    subprocess.run(cli.command("down"), cwd=cli.cwd, env=cli.env, capture_output=True,
                   timeout=60)  # fmt: skip
    for pid in processes:  # only if `down` could not stop them
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def terminals(daemon_cli: Cli) -> Iterator[Terminals]:
    handle = Terminals(daemon_cli)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def team(daemon_cli: Cli, fake_model) -> str:
    """A two-agent team on the fake model (answers any number of runs)."""
    for model, answer in (("m1", "Canberra."), ("m2", "Canberra, the capital.")):
        fake_model.behave(model, study_agent(answer, "agent2", presentation=f"Final {model}"))
    config = team_config(fake_model.base_url, ["m1", "m2"], ids=["ann", "bob"])
    return daemon_cli.write_config(config).name


def test_first_use_in_a_terminal_starts_the_stack_and_the_next_command_is_warm(
    daemon_cli, terminals, team
):
    first = terminals.run("--config", team, "--display", "simple", "capital?")
    assert "starting a warm stack in the background" in first
    assert "using the warm stack" not in first  # the first question ran on its own stack
    state = _ready(daemon_cli)
    assert state["auto"] is True and state["idle_timeout"] == 900
    assert set(state["pids"]) >= {"stackd", "nats-server", "worker"}

    # The next command, in a terminal: on the warm stack, and it starts no other.
    second = terminals.run("--config", team, "--display", "simple", "capital again?")
    assert f"using the warm stack at {state['nats_url']}" in second
    assert "starting a warm stack" not in second
    # And in a script: the result says where it ran.
    result = daemon_cli.run("--config", team, "--output", "json", "and again?")
    assert result.code == 0, result.stderr
    assert result.json()["stack"] == "warm"
    assert _state(daemon_cli)["pid"] == state["pid"]

    # Unused again once the command is done (checked every 5 s with the default period).
    wait_for(lambda: _state(daemon_cli).get("idle_since"), 15, "the stack to be idle again")
    status = daemon_cli.run("status")
    assert status.code == 0, status.stdout
    assert "warm stack: up" in status.stdout
    assert f"pid {state['pid']}, massgen 0.1.0, code current" in status.stdout
    assert "idle for" in status.stdout and "started on first use" in status.stdout

    processes = _processes(state)
    down = daemon_cli.run("down")
    assert down.code == 0 and "stopped" in down.stdout
    _gone(processes, 10, "the stack's processes to stop")
    assert _state(daemon_cli) is None


def test_no_daemon_flag_variable_and_scripts_never_start_a_stack(daemon_cli, terminals, team):
    terminals.run("--config", team, "--display", "simple", "--no-daemon", "capital?")
    daemon_cli.env["MASSGEN_NO_DAEMON"] = "1"
    terminals.run("--config", team, "--display", "simple", "capital?")
    del daemon_cli.env["MASSGEN_NO_DAEMON"]
    terminals.run("--config", team, "--display", "simple", "--embedded", "capital?")
    result = daemon_cli.run("--config", team, "--output", "json", "capital?")  # not a terminal
    assert result.code == 0, result.stderr
    assert result.json()["stack"] == "embedded"
    assert "starting a warm stack" not in result.stderr

    folder = Path(daemon_cli.env["HOME"]) / ".massgen"
    assert not (folder / "stack.json").exists() and not (folder / "stackd.log").exists()
    assert daemon_cli.run("status").code == 1


def test_an_unused_stack_stops_after_the_idle_period_but_not_under_a_session(
    daemon_cli, terminals, team
):
    daemon_cli.env["MASSGEN_DAEMON_IDLE"] = "4"
    terminals.run("--config", team, "--display", "simple", "capital?")
    state = _ready(daemon_cli)
    # Held by a client of the test's own until the session is connected: a command's
    # start-up on a loaded machine can take longer than the idle period.
    holder = _nats_client(state["nats_url"])
    assert state["idle_timeout"] == 4
    processes = _processes(state)

    # An interactive session is connected to it: it stays, however long the session idles.
    session = terminals.start("--config", team, "--display", "simple")
    session.wait("using the warm stack", "[turn 1] >")
    wait_for(lambda: (_state(daemon_cli) or {}).get("clients") == 2, 15, "the session counted")
    holder.close()
    wait_for(lambda: (_state(daemon_cli) or {}).get("clients") == 1, 15, "the holder gone")
    status = daemon_cli.run("status")
    assert "in use (1 command(s) connected)" in status.stdout, status.stdout
    time.sleep(8)  # twice the idle period
    assert pid_alive(state["pid"]), "the stack stopped under a connected session"

    session.keys("/quit", "Enter")
    session.wait("EXITED 0")
    _gone(processes, 30, "the idle stack to stop")
    assert _state(daemon_cli) is None
    assert "stackd.idle_stop" in (Path(state["log_dir"]) / "services.log").read_text()


def _nats_client(url: str) -> socket.socket:
    """A bare NATS client connection (what counts as a client of the stack)."""
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.recv(4096)  # INFO
    sock.sendall(b'CONNECT {"name":"e2e-holder","verbose":false}\r\nPING\r\n')
    answer = b""
    while b"PONG" not in answer:
        answer += sock.recv(4096)
    return sock


def test_a_stack_running_other_code_is_replaced_never_used(daemon_cli, terminals, team):
    terminals.run("--config", team, "--display", "simple", "capital?")
    old = _ready(daemon_cli)
    assert old["fingerprint"] == "code-1"

    # The code changes; a script: its question runs on its own stack, the old stack
    # goes, and none starts.
    daemon_cli.env["MASSGEN_CODE_FINGERPRINT"] = "code-2"
    result = daemon_cli.run("--config", team, "--output", "json", "capital?")
    assert result.code == 0, result.stderr
    assert result.json()["stack"] == "embedded"
    assert f"replacing the warm stack (pid {old['pid']})" in result.stderr
    _gone(_processes(old), 20, "the outdated stack to stop")
    assert _state(daemon_cli) is None

    # In a terminal: replaced by a fresh stack, which the next command uses.
    terminals.run("--config", team, "--display", "simple", "capital?")
    second = _ready(daemon_cli)
    assert second["fingerprint"] == "code-2"
    daemon_cli.env["MASSGEN_CODE_FINGERPRINT"] = "code-3"
    screen = terminals.run("--config", team, "--display", "simple", "capital?")
    assert f"replacing the warm stack (pid {second['pid']})" in screen
    assert "starting a warm stack in the background" in screen
    fresh = wait_for(
        lambda: (s := _state(daemon_cli)) and s.get("ready") and s["pid"] != second["pid"] and s,
        90, "the fresh stack",
    )  # fmt: skip
    assert fresh["fingerprint"] == "code-3"
    _gone(_processes(second), 20, "the replaced stack to stop")
    result = daemon_cli.run("--config", team, "--output", "json", "capital?")
    assert result.json()["stack"] == "warm"


def test_kill_9_of_the_stack_leaves_no_process_and_the_next_command_recovers(
    daemon_cli, terminals, team
):
    terminals.run("--config", team, "--display", "simple", "capital?")
    state = _ready(daemon_cli)
    processes = _processes(state)
    assert len(processes) >= 3  # the daemon, nats-server, the worker

    os.kill(state["pid"], signal.SIGKILL)
    _gone(processes, 30, "every process of the killed stack to end")
    leftover = [
        pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if pid_alive(pid) and _session(pid) == state["pid"]
    ]  # fmt: skip
    assert not leftover, f"processes left in the stack's session: {leftover}"

    result = daemon_cli.run("--config", team, "--output", "json", "capital?")
    assert result.code == 0, result.stderr
    assert result.json()["stack"] == "embedded"
    assert f"cleaned up after a warm stack that died (pid {state['pid']})" in result.stderr
    assert _state(daemon_cli) is None
    assert not Path(state["nats_store"]).exists()

    # And a command in a terminal starts a new one.
    terminals.run("--config", team, "--display", "simple", "capital?")
    assert _ready(daemon_cli)["pid"] != state["pid"]


def _session(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4])
    except (OSError, IndexError, ValueError):
        return None

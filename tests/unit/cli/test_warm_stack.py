"""The warm stack's decisions, without starting one: when to start it, when it has idled
out, who counts as a client, what a fingerprint covers, and what a command does with
the state file it finds (a dead stack, a failed start, other code, another folder)."""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from massgen_cli import warm
from massgen_cli.fingerprint import code_fingerprint, env_fingerprint
from massgen_cli.stackd import IdleClock, count_clients

# -- when a command may start the stack ------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_only_a_terminal_without_opt_outs_starts_the_stack(monkeypatch):
    monkeypatch.delenv("MASSGEN_NO_DAEMON", raising=False)
    assert warm.background_allowed(stream=_Terminal())
    assert not warm.background_allowed(stream=io.StringIO())  # a pipe, a file, CI
    assert not warm.background_allowed(stream=_Terminal(), no_daemon=True)
    assert not warm.background_allowed(stream=_Terminal(), embedded=True)
    monkeypatch.setenv("MASSGEN_NO_DAEMON", "1")
    assert not warm.background_allowed(stream=_Terminal())


def test_the_conftest_keeps_every_test_from_starting_one():
    assert os.environ.get("MASSGEN_NO_DAEMON") == "1"


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, 900.0), ("30", 30.0), ("0.5", 0.5), ("0", 900.0),
                           ("-3", 900.0), ("soon", 900.0)],
)  # fmt: skip
def test_idle_period_comes_from_the_variable_when_it_is_a_positive_number(value, seconds):
    env = {} if value is None else {"MASSGEN_DAEMON_IDLE": value}
    assert warm.idle_seconds(env) == seconds


# -- idling out ---------------------------------------------------------------------------


def test_idle_clock_runs_only_while_unused_and_restarts_on_use():
    clock = IdleClock(timeout=10, idle_since=None)
    assert clock.observe(False, 100.0)  # became idle: a change to publish
    assert not clock.observe(False, 105.0)
    assert not clock.expired(109.9)
    assert clock.observe(True, 109.9)  # a command connected
    assert clock.idle_since is None and not clock.expired(500.0)
    clock.observe(False, 200.0)
    assert not clock.expired(209.0) and clock.expired(210.0)


def test_idle_clock_without_timeout_never_expires_unless_retired():
    clock = IdleClock(timeout=0, idle_since=None)
    clock.observe(False, 0.0)
    assert not clock.expired(1e9)
    clock.retired = True
    assert clock.expired(1.0)
    clock.observe(True, 2.0)
    assert not clock.expired(3.0)  # retired, but a command still uses it


def test_clients_are_the_connections_that_are_not_the_stacks_own():
    connz = {
        "connections": [
            {"cid": 5, "name": "orchestrator-embedded"},
            {"cid": 7, "name": "mcp-gateway-embedded"},
            {"cid": 9, "name": "massgen-worker vm-1234"},
            {"cid": 11, "name": "massgen-cli"},  # the daemon's own client
            {"cid": 12, "name": "massgen-cli"},  # a command
            {"cid": 13, "name": "massgen-api"},  # an API server started with --nats
            {"cid": 14},  # no name: a tool
        ]
    }
    assert count_clients(connz, own={11}) == 3
    assert count_clients({"connections": None}) == 0


# -- fingerprints -------------------------------------------------------------------------


@pytest.fixture
def fake_package(tmp_path, monkeypatch) -> Iterator[Path]:
    """A ``massgen_fake`` package on ``sys.path`` (not first: that is the script's folder)."""
    root = tmp_path / "site"
    package = root / "massgen_fake"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    monkeypatch.delenv("MASSGEN_CODE_FINGERPRINT", raising=False)
    monkeypatch.setattr(sys, "path", [sys.path[0], str(root), *sys.path[1:]])
    importlib.invalidate_caches()
    yield package
    importlib.invalidate_caches()


def test_code_fingerprint_changes_when_a_file_of_the_code_does(fake_package):
    before = code_fingerprint()
    assert code_fingerprint() == before  # stable
    source = fake_package / "__init__.py"
    source.write_text("VALUE = 22\n")  # another size
    edited = code_fingerprint()
    assert edited != before
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    assert code_fingerprint() != edited  # same size, touched
    (fake_package / "prompts.yaml").write_text("a: 1\n")  # a data file counts too
    assert code_fingerprint() not in (before, edited)


def test_code_fingerprint_ignores_caches_and_bytecode(fake_package):
    before = code_fingerprint()
    (fake_package / "__pycache__").mkdir()
    (fake_package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (fake_package / ".ruff_cache").mkdir()
    (fake_package / ".ruff_cache" / "cache").write_text("x")
    assert code_fingerprint() == before


def test_code_fingerprint_can_be_pinned(monkeypatch):
    monkeypatch.setenv("MASSGEN_CODE_FINGERPRINT", "build-42")
    assert code_fingerprint() == "build-42"


def test_env_fingerprint_covers_what_the_services_read():
    base = {"HOME": "/h", "OPENAI_API_KEY": "k1", "MASSGEN_WORKER_CONCURRENCY": "4"}
    same = env_fingerprint(base)
    assert env_fingerprint({**base, "HOME": "/elsewhere", "PATH": "/bin"}) == same
    for name in ("MASSGEN_NO_DAEMON", "MASSGEN_DAEMON_IDLE", "LITELLM_LOCAL_MODEL_COST_MAP",
                 "MASSGEN_CODE_FINGERPRINT", "MASSGEN_RUNTIME_DIR"):  # fmt: skip
        assert env_fingerprint({**base, name: "1"}) == same, name
    for name in ("OPENAI_API_KEY", "GROQ_API_KEY", "MASSGEN_WORKER_CONCURRENCY",
                 "AZURE_OPENAI_ENDPOINT", "HTTPS_PROXY", "SSL_CERT_FILE", "NATS_USER"):  # fmt: skip
        assert env_fingerprint({**base, name: "other"}) != same, name


# -- what a command does with the state it finds ------------------------------------------


@pytest.fixture
def runtime(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "runtime"
    folder.mkdir()
    monkeypatch.setenv("MASSGEN_RUNTIME_DIR", str(folder))
    monkeypatch.setenv("MASSGEN_CODE_FINGERPRINT", "code-1")
    monkeypatch.delenv("MASSGEN_NO_WARM", raising=False)
    return folder


@pytest.fixture
def daemon(runtime) -> Iterator[subprocess.Popen]:
    """A stand-in daemon: a process of ours, and the stack's lock held for it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    fd = os.open(runtime / "stack.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield proc
    finally:
        os.close(fd)
        proc.kill()
        proc.wait()


def _write_state(runtime: Path, **fields: Any) -> dict[str, Any]:
    state = {
        "pid": 0, "pgid": 0, "ready": True, "auto": True, "idle_timeout": 900,
        "nats_url": "nats://127.0.0.1:1", "providers": ["openai", "chatcompletion"],
        "local": {}, "local_endpoints": {}, "pids": {}, "fingerprint": "code-1",
        "env": env_fingerprint(), "cwd": os.getcwd(), "idle_since": time.time(),
        **fields,
    }  # fmt: skip
    (runtime / "stack.json").write_text(json.dumps(state))
    return state


def test_a_ready_stack_of_this_code_is_used(runtime, daemon):
    _write_state(runtime, pid=daemon.pid, pids={"stackd": daemon.pid})
    found = warm.find_warm_stack()
    assert found is not None and found.pid == daemon.pid and found.auto
    assert warm.daemon_running()


def test_the_state_of_a_stack_that_died_is_cleaned_up(runtime, tmp_path):
    store = tmp_path / "massgen-nats-test"
    store.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_state(runtime, pid=dead.pid, pids={"stackd": dead.pid}, nats_store=str(store))
    said: list[str] = []
    assert warm.find_warm_stack(said.append) is None
    assert said == [f"cleaned up after a warm stack that died (pid {dead.pid})"]
    assert not (runtime / "stack.json").exists() and not store.exists()


def test_a_stack_holding_no_lock_is_dead_even_if_its_pid_was_reused(runtime):
    # The pid is alive (this test process) but nobody holds the lock: the daemon died
    # and its id went to another process, which must not be touched.
    _write_state(runtime, pid=os.getpid(), pgid=os.getpid(), pids={"stackd": os.getpid()})
    assert warm.find_warm_stack() is None
    assert not (runtime / "stack.json").exists()


def test_a_stack_running_other_code_is_retired_not_used(runtime, daemon, monkeypatch):
    _write_state(runtime, pid=daemon.pid, pids={"stackd": daemon.pid}, fingerprint="code-0")
    said: list[str] = []
    assert warm.find_warm_stack(said.append) is None
    assert said == [f"replacing the warm stack (pid {daemon.pid}): the installed massgen "
                    "code changed since it started"]  # fmt: skip
    assert not (runtime / "stack.json").exists()  # a fresh stack may start at once
    assert daemon.wait(5) == -signal.SIGUSR1  # the stand-in has no handler: it just ends
    assert warm.last_replaced()["fingerprint"] == "code-0"


def test_a_failed_start_is_not_retried_at_once(runtime, monkeypatch):
    _write_state(runtime, ready=False, error="nats-server did not start", failed_at=time.time())
    spawned: list[Any] = []
    monkeypatch.setattr(warm.process, "spawn", lambda *args: spawned.append(args))
    assert warm.find_warm_stack() is None
    assert not warm.spawn_background(["openai"], {})
    assert not spawned and (runtime / "stack.json").exists()
    _write_state(runtime, ready=False, error="x", failed_at=time.time() - 3600)
    assert warm.find_warm_stack() is None
    assert not (runtime / "stack.json").exists()  # an old failure is forgotten
    assert warm.spawn_background(["openai"], {})
    assert len(spawned) == 1


def test_nothing_is_spawned_while_a_daemon_holds_the_lock(runtime, daemon, monkeypatch):
    _write_state(runtime, pid=daemon.pid, ready=False, progress="starting")
    monkeypatch.setattr(warm.process, "spawn", lambda *args: pytest.fail("spawned a second stack"))
    assert not warm.spawn_background(["openai"], {})
    assert warm.starting_stack()["pid"] == daemon.pid
    assert warm.find_warm_stack() is None


def test_the_spawned_daemon_is_told_what_to_serve_and_how_long_to_idle(runtime, monkeypatch):
    spawned: list[list[str]] = []
    monkeypatch.setattr(warm.process, "spawn", lambda args, folder: spawned.append(args))
    monkeypatch.setenv("MASSGEN_DAEMON_IDLE", "42")
    said: list[str] = []
    assert warm.spawn_background(["openai", "claude"], {"qwen": 3}, said.append)
    args = spawned[0]
    assert args[args.index("--providers") + 1] == "openai,claude"
    assert args[args.index("--idle") + 1] == "42.0"
    assert args[args.index("--local") + 1] == "qwen:3"
    assert "--auto" in args
    assert "stops after 42 s unused" in said[0] and "--no-daemon" in said[0]


def test_a_stack_is_unfit_for_other_keys_or_for_files_in_another_folder(runtime, daemon,
                                                                        monkeypatch):  # fmt: skip
    _write_state(runtime, pid=daemon.pid, pids={"stackd": daemon.pid}, cwd="/somewhere/else")
    found = warm.find_warm_stack()
    assert found.unfit(["openai"], [], uses_files=False) is None
    assert "does not serve claude" in found.unfit(["claude"], [], uses_files=False)
    assert "runs in /somewhere/else" in found.unfit(["openai"], [], uses_files=True)
    monkeypatch.setenv("OPENAI_API_KEY", "another key")
    assert "other provider keys" in found.unfit(["openai"], [], uses_files=False)


def test_status_shows_pid_version_and_idle_time(runtime, daemon, capsys):
    _write_state(runtime, pid=daemon.pid, pids={"stackd": daemon.pid}, version="0.1.0",
                 idle_since=time.time() - 125, idle_timeout=900)  # fmt: skip
    lines: list[str] = []
    assert warm.stack_status(lines.append) == 0
    text = "\n".join(lines)
    assert f"pid {daemon.pid}, massgen 0.1.0, code current" in text
    assert "idle for 2 min (stops in 13 min); started on first use" in text
    _write_state(runtime, pid=daemon.pid, pids={"stackd": daemon.pid}, idle_since=None,
                 clients=2, fingerprint="code-0")  # fmt: skip
    lines.clear()
    warm.stack_status(lines.append)
    text = "\n".join(lines)
    assert "in use (2 command(s) connected)" in text and "code OUTDATED" in text


# -- what the command starts in the background ---------------------------------------------


def test_the_background_stack_serves_every_cloud_provider_and_a_used_local_model_later(
    runtime, monkeypatch
):
    from massgen_cli import targets
    from massgen_cli.embedded import local_models_of
    from massgen_cli.targets import StackTarget
    from massgen_proto.config import parse_config

    spawned: list[Any] = []
    monkeypatch.setattr(StackTarget, "_spawn", staticmethod(spawned.append))
    monkeypatch.setattr(targets, "SPAWN_DELAY", 0.01)

    async def plan(config: dict[str, Any], replaced: dict[str, Any] | None = None) -> Any:
        target = StackTarget(config, None, background=True)
        target._plan_background(local_models_of(parse_config(config)), replaced)
        planned = target._planned
        await asyncio.sleep(0.05)
        return target, planned

    async def scenario() -> None:
        cloud = {"agents": [{"id": "a", "backend": {"type": "openai", "model": "gpt-4o-mini"}}]}
        target, planned = await plan(cloud)
        assert spawned == [planned] and target._planned is None  # started a moment later
        providers, local, auto, idle = spawned.pop()
        assert {"openai", "anthropic", "gemini", "chatcompletion"} <= set(providers)
        assert "local" not in providers and local == {} and auto and idle is None

        # A local model: started when the command is done, not next to its own copy.
        model = {"type": "local", "model": "qwen2.5-coder-0.5b"}
        team = {"agents": [{"id": "a", "backend": model}, {"id": "b", "backend": dict(model)}]}
        target, planned = await plan(team)
        assert not spawned and planned[1] == {"qwen2.5-coder-0.5b": 2}
        target._spawn_pending()  # what stop() does once its own stack is down
        assert spawned.pop() == planned

        # Replacing a stack started with `massgen up`: what it served, and it lives as long.
        replaced = {"providers": ["a-custom-pool"], "local": {}, "auto": False, "idle_timeout": 0}
        await plan(cloud, replaced)
        providers, local, auto, idle = spawned.pop()
        assert "a-custom-pool" in providers and not auto and idle == 0

    asyncio.run(scenario())


# -- what a command remembers between runs ---------------------------------------------------


def _args(config: str) -> Any:
    import argparse

    return argparse.Namespace(
        config=config, model=None, backend=None, base_url=None, system_message=None
    )


def test_a_config_file_is_validated_once_until_it_or_the_code_changes(
    runtime, tmp_path, monkeypatch
):
    from massgen_cli import teams

    file = tmp_path / "team.yaml"
    file.write_text("agents:\n  - id: a\n    backend: {type: openai, model: gpt-4o-mini}\n")
    validated: list[str] = []
    real = teams.resolve_config
    monkeypatch.setattr(teams, "resolve_config", lambda a: validated.append(a.config) or real(a))

    first = teams.resolve_team(_args(str(file)))
    assert first.providers == ["openai"] and not first.uses_files and first.local == {}
    assert teams.resolve_team(_args(str(file))) == first and len(validated) == 1
    monkeypatch.setenv("MASSGEN_CODE_FINGERPRINT", "code-2")  # another installation
    teams.resolve_team(_args(str(file)))
    assert len(validated) == 2
    file.write_text(file.read_text().replace("gpt-4o-mini", "gpt-4o"))
    os.utime(file, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert teams.resolve_team(_args(str(file))).config["agents"][0]["backend"]["model"] == "gpt-4o"
    assert len(validated) == 3


def test_a_config_naming_variables_or_an_invalid_one_is_never_remembered(runtime, tmp_path):
    from massgen_cli import teams
    from massgen_proto.config import ConfigError

    file = tmp_path / "team.yaml"
    file.write_text(
        "agents:\n  - id: a\n    backend:\n      type: openai\n      model: gpt-4o-mini\n"
        "      mcp_servers: [{name: s, type: stdio, command: x, env: {K: '${HOME}'}}]\n"
    )
    assert teams._cache_path(_args(str(file))) is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents:\n  - id: a\n    backend: {type: no-such-backend, model: x}\n")
    with pytest.raises(ConfigError):
        teams.resolve_team(_args(str(bad)))
    assert not list((runtime / "configs").glob("*.json"))

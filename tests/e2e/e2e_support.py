"""Helpers for running the ``massgen`` command as a real subprocess.

Each test gets its own working folder (``tmp_path / "cwd"``) and HOME, so no ``.env``
or ``.massgen/`` of the developer's leaks in, and an environment in which the
command can only reach 127.0.0.1 (proxies dropped, litellm's cost map local).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Cli",
    "CliResult",
    "Tmux",
    "kill_tree",
    "massgen_command",
    "read_events",
    "team_config",
    "wait_for",
]

PROXY_VARIABLES = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
)  # fmt: skip


def massgen_command() -> list[str]:
    """The installed ``massgen`` script next to this interpreter (else ``-m massgen_cli``)."""
    script = Path(sys.executable).with_name("massgen")
    return [str(script)] if script.exists() else [sys.executable, "-m", "massgen_cli"]


def team_config(
    base_url: str, models: list[str], ids: list[str] | None = None, **sections: Any
) -> dict[str, Any]:
    """A team config: one chatcompletion agent per fake model, plus extra top-level sections."""
    ids = ids or [f"agent-{model}" for model in models]
    config: dict[str, Any] = {
        "agents": [
            {
                "id": agent_id,
                "backend": {
                    "type": "chatcompletion",
                    "model": model,
                    "base_url": base_url,
                    "api_key": "sk-fake",
                },
            }
            for agent_id, model in zip(ids, models, strict=True)
        ]
    }
    config.update(sections)
    return config


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete line of an events.jsonl file, parsed (a partial last line is skipped)."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            break  # the writer is mid-line
    return events


@dataclass
class CliResult:
    """A finished ``massgen`` process."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The one JSON object of ``--output json`` (the whole of stdout)."""
        return json.loads(self.stdout)


class Cli:
    """Runs ``massgen`` in a private folder with a local-only environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir()
        home = tmp_path / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
        env.update(
            HOME=str(home),
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
            # Provider errors are retried quickly, so failure runs stay short.
            MASSGEN_WORKER_RETRY_BASE_DELAY="0.01",
            MASSGEN_WORKER_RETRY_MAX_DELAY="0.05",
            MASSGEN_WORKER_PROVIDER_RETRIES="1",
        )
        self.env = env

    def write_config(self, config: dict[str, Any] | str, name: str = "team.yaml") -> Path:
        """Write a config (a mapping as YAML, or raw text) into the working folder."""
        path = self.cwd / name
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    def command(self, *args: str) -> list[str]:
        return [*massgen_command(), *args]

    def run(self, *args: str, timeout: float = 150, env: dict[str, str] | None = None) -> CliResult:
        """Run ``massgen ARGS`` to the end (it and its children killed after ``timeout`` s)."""
        proc = subprocess.Popen(
            self.command(*args),
            cwd=self.cwd,
            env=env or self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            stdout, stderr = proc.communicate()
            raise AssertionError(
                f"massgen did not exit within {timeout}s; stderr:\n{stderr[-3000:]}"
            ) from None
        return CliResult(proc.returncode, stdout, stderr)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start ``massgen ARGS`` and return at once (the caller waits and stops it)."""
        return subprocess.Popen(
            self.command(*args),
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def log_dirs(self, root: Path | None = None) -> list[Path]:
        """Run folders under ``root`` (default ``<cwd>/.massgen/logs``)."""
        root = root or self.cwd / ".massgen" / "logs"
        return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def descendants(pid: int) -> list[int]:
    """Process ids of every descendant of ``pid`` (by parent id, from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and everything it started (its worker runs in its own session)."""
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Tmux:
    """A private tmux server running one command in a 150x45 window (a real terminal)."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli
        self.socket = f"mg-{uuid.uuid4().hex[:8]}"

    def _tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            cwd=self.cli.cwd, env=self.cli.env, capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        return proc.stdout

    def start(self, *massgen_args: str, stderr: Path | None = None) -> None:
        """Run ``massgen ARGS`` in the window (its stderr into ``stderr`` when given, so
        stdout alone is the terminal). The server takes ``cli.env`` as it is now."""
        command = " ".join(_quote(a) for a in self.cli.command(*massgen_args))
        if stderr is not None:
            command += f" 2>{_quote(str(stderr))}"
        # Keep the pane after the command ends, so the last screen can be read.
        self._tmux("new-session", "-d", "-s", "t", "-x", "150", "-y", "45",
                   f"{command}; echo EXITED $?; sleep 600")  # fmt: skip

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t", "-S", "-200")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def wait(self, *texts: str, timeout: float = 90) -> str:
        def ready() -> str | None:
            screen = self.screen()
            return screen if all(t in screen for t in texts) else None

        try:
            return wait_for(ready, timeout, f"{texts} on screen")
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- screen ---\n{self.screen()}") from None

    def stop(self) -> None:
        self._tmux("kill-server")


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"

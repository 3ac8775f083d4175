"""The warm-stack daemon (``python -m massgen_cli.stackd``).

Started by ``massgen up``, or by a ``massgen`` command in a terminal when no warm stack
runs (``--auto``). Runs an :class:`~massgen_cli.embedded.EmbeddedStack` and keeps the
state file up to date: progress while starting, then the NATS URL, the served
providers, local model endpoints, every process id, the code and environment
fingerprints, and whether anyone uses it (``clients``, ``idle_since``).

It stops on SIGTERM/SIGINT/SIGHUP, when a process of its stack dies, and (with
``--idle S``) after S seconds with no run and no connected client. SIGUSR1 retires
it: it gives up the state file and the lock at once (a fresh stack can start) and
stops as soon as nobody uses it.

Only one daemon runs per state folder: each holds an exclusive ``flock`` on
``stack.lock`` for its life, so the lock also tells a command whether the daemon
behind a state file is still there (a ``kill -9`` releases it). Its children (nats-server,
the worker, local model servers) stay in its process group and get SIGTERM when it
dies (``PR_SET_PDEATHSIG``), so none outlives it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .embedded import EmbeddedStack

__all__ = ["IdleClock", "count_clients", "main"]

INTERNAL_CONNECTIONS = ("orchestrator-", "mcp-gateway-", "massgen-worker")
"""Name prefixes of the stack's own NATS connections (not clients)."""


@dataclass
class IdleClock:
    """When the background stack has been unused long enough to stop.

    "Busy" means a client is connected or a turn is queued or running. The clock
    starts when the stack becomes idle, restarts whenever it is busy again, and has
    run out after ``timeout`` idle seconds (never when ``timeout`` is 0).
    """

    timeout: float
    """Idle seconds before stopping; 0: never stop for idleness."""
    idle_since: float | None
    """When the stack last became idle (epoch s); None while busy."""
    retired: bool = False
    """Retired (SIGUSR1): stop as soon as it is idle, whatever the timeout."""

    def observe(self, busy: bool, now: float) -> bool:
        """Record whether the stack is busy at ``now``; True when that changed."""
        if busy:
            changed, self.idle_since = self.idle_since is not None, None
            return changed
        if self.idle_since is None:
            self.idle_since = now
            return True
        return False

    def expired(self, now: float) -> bool:
        """True when the stack should stop now for being unused."""
        if self.idle_since is None:
            return False
        if self.retired:
            return True
        return self.timeout > 0 and now - self.idle_since >= self.timeout


def count_clients(connz: Mapping[str, Any], own: Iterable[int] = ()) -> int:
    """Connections in a nats-server ``/connz`` answer that are clients of the stack.

    The stack's own connections (orchestrator, gateway, workers: by name, and the
    daemon's ids in ``own``) do not count; everything else does: ``massgen`` commands,
    an API server started with ``--nats``, a debugging tool.
    """
    mine = set(own)
    count = 0
    for connection in connz.get("connections") or ():
        if connection.get("cid") in mine:
            continue
        if str(connection.get("name") or "").startswith(INTERNAL_CONNECTIONS):
            continue
        count += 1
    return count


def _write(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _take_lock(path: Path, wait: float) -> int | None:
    """The lock file's descriptor, held exclusively; None if another daemon holds it.

    Waits up to ``wait`` s: a retired daemon gives its lock up within milliseconds.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


class _Daemon:
    """One daemon's life: start the stack, publish its state, watch it, stop it."""

    def __init__(self, args: argparse.Namespace, lock_fd: int) -> None:
        from .fingerprint import code_fingerprint, env_fingerprint, installed_version

        self.args = args
        self.path = Path(args.state)
        self.lock_fd: int | None = lock_fd
        self.log_dir = self.path.parent / "stack-logs"
        self.stop = asyncio.Event()
        self.clock = IdleClock(timeout=args.idle, idle_since=None)
        self.clients = 0
        self.base: dict[str, Any] = {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "ready": False,
            "auto": args.auto,
            "idle_timeout": args.idle,
            "log_dir": str(self.log_dir),
            # Taken before the services are imported: if the code changes meanwhile,
            # the next command sees a difference and replaces this stack.
            "fingerprint": code_fingerprint(),
            "env": env_fingerprint(),
            "version": installed_version(),
            "python": sys.executable,
            # Relative paths of a team's files resolve against the stack's folder.
            "cwd": os.getcwd(),
        }
        self.state: dict[str, Any] = dict(self.base)

    def publish(self, **fields: Any) -> None:
        """Write the state file (not once retired: it may be a newer stack's by then)."""
        self.state.update(fields)
        if not self.clock.retired:
            _write(self.path, self.state)

    def retire(self) -> None:
        """SIGUSR1: give up the state file and the lock, stop when nobody uses it."""
        if self.clock.retired:
            return
        _forget(self.path)
        self.clock.retired = True
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # closing releases the flock
            self.lock_fd = None

    async def serve(self) -> int:
        """Start the stack, publish it, keep it until stopped; the process exit code."""
        from .embedded import EmbeddedStack

        self._listen_and_log()
        self.publish(progress="starting nats-server, orchestrator and workers")
        providers, local = _pools(self.args)
        stack = EmbeddedStack(
            providers, log_dir=self.log_dir, debug=self.args.debug, local_models=local,
            on_progress=lambda note: self.publish(progress=note),
            own_sessions=False, monitor=True,
        )  # fmt: skip
        code = await self._start(stack)
        if code is not None:
            return code
        self._publish_ready(stack, providers, local)
        watcher = asyncio.ensure_future(self._watch(stack))
        try:
            await self.stop.wait()
        finally:
            # Commands must not connect to a stack that is going away.
            self.publish(ready=False, stopping=True)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await stack.stop()
            _forget(self.path)
        return 0

    def _listen_and_log(self) -> None:
        """Signal handlers, then the services' log file."""
        from massgen_kit.logsetup import configure_logging

        # Handlers first: a command may retire this stack as soon as it reads the state.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self.retire)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        configure_logging(
            "debug" if self.args.debug else "info",
            (self.log_dir / "services.log").open("a", encoding="utf-8"),
        )

    async def _start(self, stack: EmbeddedStack) -> int | None:
        """Start ``stack`` unless stopped first: None once it runs, else the exit code."""
        from .embedded import LocalModelStartError

        starting = asyncio.ensure_future(stack.start())
        stopping = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # stopped (massgen down) while still starting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            await stack.stop()
            _forget(self.path)
            return 0
        stopping.cancel()
        try:
            starting.result()
        except (LocalModelStartError, OSError, RuntimeError) as error:
            await stack.stop()
            self.publish(error=str(error), failed_at=time.time())
            return 3
        return None

    def _publish_ready(
        self, stack: EmbeddedStack, providers: list[str], local: Counter[str]
    ) -> None:
        """What commands need to use the running stack: its URL, pools and processes."""
        nats = stack.nats
        assert nats is not None  # a started stack has its server
        self.state.pop("progress", None)
        self.clock.observe(False, time.time())
        self.publish(
            ready=True,
            nats_url=nats.url,
            nats_store=str(nats.store_dir),
            nats_monitor=nats.monitor_url,
            providers=providers,
            local={name: slots for name, slots in local.items()},
            local_endpoints={k: list(v) for k, v in stack.local_endpoints.items()},
            pids={"stackd": os.getpid(), **stack.pids()},
            started_at=time.time(),
            idle_since=self.clock.idle_since,
            clients=0,
        )

    async def _watch(self, stack: Any) -> None:
        """Every few seconds: is the stack whole, is anyone using it, has it idled out?"""
        import structlog

        log = structlog.get_logger("massgen.stackd")
        timeout = self.args.idle
        period = min(5.0, max(0.2, timeout / 10)) if timeout > 0 else 5.0
        own = {stack.client.client_id} if stack.client is not None else set()
        while not self.stop.is_set():
            await asyncio.sleep(0.2 if self.clock.retired else period)
            if not stack.worker_alive() or not (stack.nats and stack.nats.running):
                log.error("stackd.stack_broken", worker=stack.worker_alive())
                self.stop.set()
                return
            try:
                clients, turns = await _activity(stack, own)
            except Exception as error:  # noqa: BLE001 - unknown: leave the clock as it is
                log.warning("stackd.activity_unknown", error=repr(error))
                continue
            now = time.time()
            if self.clock.observe(clients > 0 or turns > 0, now) or clients != self.clients:
                self.clients = clients
                self.publish(idle_since=self.clock.idle_since, clients=clients)
            if self.clock.expired(now):
                reason = "retired" if self.clock.retired else f"idle for {timeout:.0f}s"
                log.info("stackd.idle_stop", reason=reason)
                self.stop.set()


async def _activity(stack: Any, own: set[int]) -> tuple[int, int]:
    """(connected clients, turns queued or running) of the stack."""
    import urllib.request

    from massgen_proto.subjects import TURNS_STREAM

    def connz() -> dict[str, Any]:
        # No proxy: the user's HTTP_PROXY must not carry a loopback request.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{stack.nats.monitor_url}/connz?limit=1024", timeout=2) as answer:
            return json.loads(answer.read())

    clients = count_clients(await asyncio.to_thread(connz), own)
    turns = 0
    for info in await stack.client.jetstream().consumers_info(TURNS_STREAM):
        turns += (info.num_pending or 0) + (info.num_ack_pending or 0)
    return clients, turns


def _pools(args: argparse.Namespace) -> tuple[list[str], Counter[str]]:
    """The worker pools (``local`` added when a local model runs) and local model slots."""
    providers = [p for p in args.providers.split(",") if p]
    local: Counter[str] = Counter()
    for item in args.local:
        name, _, slots = item.rpartition(":") if ":" in item else (item, "", "3")
        local[name] = int(slots or 3)
    if local and "local" not in providers:
        providers.append("local")
    return providers, local


def _forget(path: Path) -> None:
    """Remove the state file if it is still this process's (not a newer stack's)."""
    state = None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    if state is not None and state.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the daemon."""
    parser = argparse.ArgumentParser(prog="massgen-stackd", description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, help="state file to write")
    parser.add_argument("--providers", required=True, help="comma-separated worker pools")
    parser.add_argument("--local", action="append", default=[], help="local model NAME[:SLOTS]")
    parser.add_argument(
        "--idle", type=float, default=0.0, help="stop after this many unused seconds (0: never)"
    )
    parser.add_argument("--auto", action="store_true", help="started by a command on first use")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    path = Path(args.state)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _take_lock(path.with_name("stack.lock"), wait=5.0)
    if lock is None:
        print(f"massgen-stackd: another warm stack holds {path.with_name('stack.lock')}")
        return 0
    return asyncio.run(_Daemon(args, lock).serve())


if __name__ == "__main__":
    raise SystemExit(main())

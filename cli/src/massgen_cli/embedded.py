"""Everything on one machine: nats-server, the orchestrator, workers, the local model.

Start order is chosen for start-up time: nats-server first (tens of ms), then the
worker process at once, because its imports take as long as this process's own and
overlap with them; the orchestrator runs inside this process. A command's stack
(``start(wait_for_workers=False)``) does not wait for the worker either: its run is
created at once and waits in the turns stream for the worker's first pull, while
:meth:`EmbeddedStack.guarded` watches the worker. Stop order is the reverse. Every step
is safe to repeat.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from massgen_kit.health import inbox_prefix_for
from massgen_kit.runtime import mark
from massgen_proto.subjects import TURNS_STREAM, provider_consumer

from . import early_worker
from .early_worker import die_with_parent, resolve_prctl
from .nats_server import NatsServer

if TYPE_CHECKING:
    from massgen_gateway.service import GatewayService
    from massgen_gateway.settings import GatewaySettings
    from massgen_orchestrator.service import OrchestratorService
    from massgen_proto.config import RunConfig
    from nats.aio.client import Client

__all__ = [
    "EmbeddedStack",
    "LocalModelStartError",
    "WorkerStartError",
    "gateway_settings",
    "local_models_of",
    "providers_of",
]


T = TypeVar("T")

WORKER_CHECK_SECONDS = 0.25
"""How often :meth:`EmbeddedStack.guarded` checks that the worker process still runs."""


class WorkerStartError(RuntimeError):
    """The worker process died or never became ready."""


class LocalModelStartError(RuntimeError):
    """The local model server exited before it was ready (missing weights, bad name)."""


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def providers_of(config: RunConfig) -> list[str]:
    """Worker pools a config needs, in first-use order."""
    return list(dict.fromkeys(agent.backend.provider for agent in config.agents))


def local_models_of(config: RunConfig) -> Counter[str]:
    """Local models a config uses, with how many agents use each (= parallel slots)."""
    return Counter(a.backend.model for a in config.agents if a.backend.type == "local")


def gateway_settings(nats_url: str, log_dir: Path | None) -> GatewaySettings:
    """The embedded gateway's settings: the user's ``MASSGEN_GATEWAY_*`` variables apply
    (limits, timeouts, uploads by URL from private addresses), except where it connects."""
    from massgen_gateway.settings import GatewaySettings

    settings = GatewaySettings.from_env(
        nats_url=nats_url, memory_streams=True, replica="embedded",
        final_dir=str(log_dir / "final_workspace") if log_dir else None,
        # The user's own machine: commands get the network when the config asks for it
        # (command_line_docker_network_mode), as MassGen's docker mode gives it.
        exec_network=True,
    )  # fmt: skip
    if settings.sandbox == "bwrap":  # the user asked for it: never outside the sandbox
        return settings
    # Commands run in bubblewrap when it is there, else (as MassGen's local mode) with
    # the patterns and limits only.
    return settings.model_copy(update={"unsandboxed_exec": True})


class EmbeddedStack:
    """A private MassGen-on-NATS deployment for one command.

    Args:
        providers: worker pools to serve.
        log_dir: where service logs go (``services.log``); None discards them.
        debug: verbose service logs.
        local_models: local model name -> number of agents using it.
        on_progress: callable(text) for "still starting" notes; None = quiet.
        own_sessions: each child process in a session of its own (a command in a
            terminal: Ctrl-C reaches only the command). False keeps them in this
            process's group (the background stack, whose group is killed as one).
        monitor: nats-server also serves its monitoring endpoints (``/connz``), which
            the background stack reads to know whether anyone is connected.
        tools: run the tool gateway (in-process). Without it a turn gets the workflow
            tools only, so a command whose team uses no tools (no MCP servers,
            workspace, commands, custom tools or context paths) goes without: its
            imports are a third of the command's start-up.
        checks: without tools, still start the gateway (in the background) to run
            answers' code against the task's examples, where bubblewrap is there. False
            when no question the stack will serve gives examples (a one-off command).
    """

    def __init__(
        self,
        providers: list[str],
        log_dir: Path | None = None,
        debug: bool = False,
        local_models: Counter[str] | None = None,
        on_progress: Any = None,
        *,
        own_sessions: bool = True,
        monitor: bool = False,
        tools: bool = True,
        checks: bool = True,
    ) -> None:
        self.providers = providers
        self.log_dir = log_dir
        self.debug = debug
        self.local_models = local_models or Counter()
        self._on_progress = on_progress
        self._own_sessions = own_sessions
        self._monitor = monitor
        self._tools = tools
        self._checks = checks
        self._gateway_start: asyncio.Future[None] | None = None
        """The gateway starting in the background (a team without tools: checks only)."""
        self.nats: NatsServer | None = None
        self.orchestrator: OrchestratorService | None = None
        self.gateway: GatewayService | None = None
        self.client: Client | None = None
        self._worker: subprocess.Popen | None = None
        self._workers_ready: asyncio.Future[None] | None = None
        self._worker_log = None
        self._local_procs: list[asyncio.subprocess.Process] = []
        self._local_endpoints: dict[str, tuple[str, str]] = {}

    @property
    def local_endpoints(self) -> dict[str, tuple[str, str]]:
        """Local model name -> (base_url, served model name)."""
        return dict(self._local_endpoints)

    async def start(self, *, wait_for_workers: bool = True) -> EmbeddedStack:
        """Start everything; returns once a run can be created.

        Args:
            wait_for_workers: return only once the worker pulls turns. False: return as
                soon as runs can be created (their turns wait for the worker in the
                stream); await the runs through :meth:`guarded`, which fails if the
                worker dies or does not start.
        """
        # nats-server dies with us too (a ``kill -9`` leaves no server behind). The
        # command may have started it already (``early_worker``).
        early = None if self._monitor or not self._own_sessions else early_worker.take_nats()
        self.nats = (
            early
            or NatsServer(
                monitor=self._monitor, own_session=self._own_sessions, die_with_parent=True
            ).spawn()
        )
        self.nats.wait_ready()
        mark("cli: nats-server ready")
        self._start_worker()
        local = asyncio.ensure_future(self._start_local_models())
        # Imported only now: these imports overlap with the worker's own start-up.
        import nats
        from massgen_orchestrator.service import OrchestratorService
        from massgen_orchestrator.settings import OrchestratorSettings

        self.orchestrator = OrchestratorService(
            OrchestratorSettings(nats_url=self.nats.url, memory_streams=True, replica="embedded")
        )
        mark("cli: service code imported")
        await self.orchestrator.start()
        mark("cli: orchestrator started")
        if self._tools:
            await self._start_gateway()
        elif self._checks and shutil.which("bwrap"):
            # No agent has tools, but answers with code are run against the task's
            # examples in the gateway's sandbox: started alongside the first turns (a
            # check asked before it is up goes unchecked).
            self._gateway_start = asyncio.ensure_future(self._start_gateway())
        self.client = await nats.connect(
            self.nats.url, name="massgen-cli", inbox_prefix=inbox_prefix_for(self.nats.url, "cli")
        )
        await local
        if wait_for_workers:
            await self._wait_for_workers()
        else:
            self._workers_ready = asyncio.ensure_future(self._wait_for_workers())
        return self

    async def guarded(self, work: Awaitable[T]) -> T:
        """Await ``work`` (following a run) while watching the worker process.

        Raises:
            WorkerStartError: the worker exited, or did not start pulling turns in time;
                ``work`` is cancelled (the run has no worker left to take its turns).
        """
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=WORKER_CHECK_SECONDS)
                if done:
                    return task.result()
                ready = self._workers_ready
                if ready is not None and ready.done() and not ready.cancelled():
                    if (error := ready.exception()) is not None:
                        raise error
                if not self.worker_alive():
                    raise WorkerStartError(self._worker_failure())
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _start_gateway(self) -> None:
        """The tool gateway, in-process: cheap until an agent asks for tools."""
        from massgen_gateway.service import GatewayService

        assert self.nats is not None
        self.gateway = GatewayService(gateway_settings(self.nats.url, self.log_dir))
        await self.gateway.start()
        mark("cli: gateway started")

    async def _wait_for_workers(self, timeout: float = 120.0) -> None:
        """Return once the worker pulls every provider's turns.

        A stack that serves others (``massgen up``, ``serve api``) says it is ready only
        then; a command's own stack runs this beside its first run (:meth:`guarded`).

        Raises:
            WorkerStartError: the worker exited, or pulled nothing within ``timeout``.
        """
        js = self.client.jetstream()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiting = set(self.providers)
        while waiting:
            if not self.worker_alive():
                raise WorkerStartError(self._worker_failure())
            for provider in list(waiting):
                try:
                    info = await js.consumer_info(TURNS_STREAM, provider_consumer(provider))
                except Exception:  # noqa: BLE001 - not created yet: the worker is starting
                    continue
                if info.num_waiting:
                    waiting.discard(provider)
            if loop.time() > deadline:
                raise WorkerStartError(f"the worker did not start within {timeout:.0f}s")
            if waiting:
                await asyncio.sleep(0.05)
        mark("cli: worker pulling")

    def _worker_failure(self) -> str:
        where = f"; see {self.log_dir / 'worker.log'}" if self.log_dir is not None else ""
        code = self._worker.returncode if self._worker is not None else None
        return f"the worker process exited (exit code {code}){where}"

    def _start_worker(self) -> None:
        level = "debug" if self.debug else "info"
        log_file = self.log_dir / "worker.log" if self.log_dir is not None else None
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
        early = early_worker.take()
        if early is not None:  # started by ``main`` and loading litellm already
            early_worker.launch(early, self.nats.url, self.providers, level, log_file)
            self._worker = early
            return
        if log_file is not None:
            self._worker_log = log_file.open("ab")
        self._worker = early_worker.spawn_worker(
            [
                "--nats", self.nats.url,
                "--providers", ",".join(self.providers),
                "--memory-streams",
                "--log-level", level,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._worker_log or subprocess.DEVNULL,
            stderr=self._worker_log or subprocess.DEVNULL,
            own_session=self._own_sessions,
        )  # fmt: skip

    async def _start_local_models(self) -> None:
        # A child process per model: loading weights holds the GIL for seconds, which
        # would starve this process's NATS connections if done in a thread here.
        for name, agents in self.local_models.items():
            log_target = (
                (self.log_dir / f"local-model-{_safe(name)}.log").open("ab")
                if self.log_dir is not None
                else None
            )
            if self._on_progress is not None:
                self._on_progress(f"starting local model {name} ({agents} slot(s))")
            resolve_prctl()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "massgen_local_model",
                "--model", name, "--parallel", str(max(agents, 1)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_target or asyncio.subprocess.DEVNULL,
                start_new_session=self._own_sessions,
                preexec_fn=die_with_parent,
            )  # fmt: skip
            if log_target is not None:
                log_target.close()
            self._local_procs.append(proc)
            line = await proc.stdout.readline()
            if not line:
                code = await proc.wait()
                detail = ""
                if self.log_dir is not None:
                    path = self.log_dir / f"local-model-{_safe(name)}.log"
                    errors = [
                        x for x in path.read_text(errors="replace").splitlines() if "error" in x
                    ]
                    detail = f": {errors[-1]}" if errors else f"; see {path}"
                raise LocalModelStartError(
                    f"local model {name!r} did not start (exit code {code}){detail}"
                )
            ready = json.loads(line)
            self._local_endpoints[name] = (ready["base_url"], ready["model"])

    def pids(self) -> dict[str, int]:
        """Process ids of the child processes, by role (for ``massgen up``'s state file)."""
        out: dict[str, int] = {}
        if self.nats is not None and self.nats._proc is not None:
            out["nats-server"] = self.nats._proc.pid
        if self._worker is not None:
            out["worker"] = self._worker.pid
        for name, proc in zip(self.local_models, self._local_procs, strict=False):
            out[f"local-model:{name}"] = proc.pid
        return out

    def worker_alive(self) -> bool:
        """True while the worker process runs."""
        return self._worker is not None and self._worker.poll() is None

    async def stop(self) -> None:
        """Stop in reverse start order. Safe to call twice."""
        for pending in (self._workers_ready, self._gateway_start):
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
        self._workers_ready = self._gateway_start = None
        if self.client is not None:
            client, self.client = self.client, None
            try:
                await client.drain()
            except Exception:  # noqa: BLE001 - a lost connection must not stop the teardown
                await client.close()
        # The worker's interpreter takes a second to exit: stop the in-process services
        # meanwhile. With no run left in this private stack, a slow worker is killed.
        worker, self._worker = self._worker, None
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        gateway, self.gateway = self.gateway, None
        orchestrator, self.orchestrator = self.orchestrator, None
        await asyncio.gather(
            *(service.stop() for service in (gateway, orchestrator) if service is not None)
        )
        if worker is not None:
            try:
                # It has nothing in flight once the run is over; its interpreter's
                # teardown (litellm) is the slow part, not worth waiting for.
                await asyncio.to_thread(worker.wait, 0.5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if self._worker_log is not None:
            self._worker_log.close()
            self._worker_log = None
        for proc in self._local_procs:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        self._local_procs.clear()
        if self.nats is not None:
            server, self.nats = self.nats, None
            server.stop()

    async def __aenter__(self) -> EmbeddedStack:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

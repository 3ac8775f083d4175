"""Where a command's runs go: one protocol, two targets, one way to open and close them.

:class:`RunTarget` is what a command (``massgen "question"``, a session, ``massgen
eval``) needs from the thing its runs go to. Two targets implement it:

- :class:`StackTarget`: a warm local stack (``massgen up``) or a private embedded one,
  spoken to over NATS (``client.follow_run``);
- :class:`ApiTarget`: a remote deployment behind its HTTP API (``massgen --api URL``).

:func:`opened` is the one "set up logging, start the target, run, stop it" flow.
Heavy imports (nats, httpx, the services) happen when a target starts, not when this
module is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections import Counter

    from massgen_proto.events import RunEvent
    from massgen_proto.summary import RunSummary

__all__ = ["ApiTarget", "RunTarget", "StackTarget", "TargetUnavailable", "opened"]


class TargetUnavailable(RuntimeError):
    """The target could not be started or reached (a stack that did not start, an API
    that does not answer). The message says why; commands exit with code 3."""


class RunTarget(Protocol):
    """What the runs of one command go to.

    Lifecycle: :meth:`start` once, then any number of :meth:`create` +
    :meth:`follow` pairs (concurrently too), then :meth:`stop` once. Use
    :func:`opened` rather than calling start and stop yourself.
    """

    config: dict[str, Any]
    """The run config mapping (``{}`` for a team named on the server)."""
    kind: str
    """Where runs go: ``warm`` (a background stack), ``embedded`` (a stack of this
    command's own) or ``api`` (the result of ``--output json`` says which)."""
    warnings: list[str]
    """Config keys accepted but not applied: printed, and kept in each log folder."""

    async def start(self) -> None:
        """Get ready for runs.

        Raises:
            TargetUnavailable: the target cannot be started or reached.
        """
        ...

    async def create(self, question: str) -> str:
        """Name a run of ``question`` and return its id (the id :meth:`follow` takes).

        Raises:
            RunRefused: the target refused the run.
            TargetUnavailable: the target did not answer.
        """
        ...

    async def follow(
        self,
        question: str,
        on_event: Callable[[RunEvent], Any],
        *,
        history: list[Any] | None,
        run_id: str,
        cancel: asyncio.Event,
        previous_run_id: str | None = None,
    ) -> RunSummary:
        """Run ``run_id``, hand each of its events to ``on_event``, return its summary.

        Setting ``cancel`` cancels the run; this still returns once its last event
        arrives, with every accepted answer. ``previous_run_id`` (a session's previous
        turn) gives the agents that run's final workspace to start from.

        Raises:
            RunRefused: the target refused the run.
            TargetUnavailable: the target stopped answering.
        """
        ...

    def alive(self) -> bool:
        """False once a process of the target's own (the embedded worker) has died."""
        ...

    async def stop(self) -> None:
        """Release what :meth:`start` took; safe after a failed or no start."""
        ...


def _say(text: str) -> None:
    print(f"massgen: {text}", file=sys.stderr, flush=True)


STARTING_WAIT = 15.0
"""How long a command waits for a warm stack that is starting before it starts its own."""

SPAWN_DELAY = 0.5
"""The background stack starts this long after the command's own stack is up: its
start-up (seconds of imports) then does not compete with drawing the first panel."""


class StackTarget:
    """The stack questions run on: a warm one (background) or a private embedded one.

    Args:
        config: the run config mapping (local agents are pointed at their server).
        log_dir: where an embedded stack writes services.log / worker.log.
        embedded: start a private stack even when a warm one is running.
        debug: verbose service logs, and say where they are.
        background: when this command runs on a stack of its own, also start the warm
            stack in the background for the next commands
            (:func:`~massgen_cli.warm.background_allowed` says when).
        team: what is known of ``config`` already (:func:`~massgen_cli.teams.resolve_team`,
            possibly remembered): spares validating it again.
        checks: the runs may need answers' code checked against the task's examples
            (a stack of this command's own then starts its gateway for a team without
            tools); False when the one question to ask gives no examples.
    """

    def __init__(
        self,
        config: dict[str, Any],
        log_dir: Path | None,
        *,
        embedded: bool = False,
        debug: bool = False,
        background: bool = False,
        team: Any = None,
        checks: bool = True,
    ) -> None:
        if team is None:
            from .teams import describe

            try:
                team = describe(config)
            except ValueError:  # invalid: the orchestrator refuses the run, saying why
                team = None
        self.config = config
        self._team = team
        self.warnings: list[str] = list(team.warnings) if team is not None else []
        self.log_dir = log_dir
        self.embedded = embedded
        self.debug = debug
        self.background = background
        self.checks = checks
        self.nc: Any = None
        self._stack: Any = None
        self.warm: Any = None
        self._planned: Any = None
        self._spawn_timer: asyncio.TimerHandle | None = None
        self._log_handle: Any = None

    @property
    def kind(self) -> str:
        return "warm" if self.warm is not None else "embedded"

    async def start(self) -> None:
        """Connect to a warm stack or start a private one."""
        from massgen_kit.runtime import loaded

        try:
            await self._start()
        except RuntimeError as error:  # the local model or nats-server did not start
            raise TargetUnavailable(str(error)) from error
        finally:
            loaded()  # start-up's imports are done: collect as usual from here on

    async def _start(self) -> None:
        from collections import Counter

        from . import early_worker
        from . import warm as background
        from .teams import describe

        team = self._team if self._team is not None else describe(self.config)  # ConfigError
        providers = list(team.providers)
        local_models = Counter(team.local)
        local = list(local_models)
        uses_files = team.uses_files
        replaced = None
        # The command started its own worker and nats-server after finding no warm stack
        # (``ask``): not looked for again.
        own = self.embedded or early_worker.started()
        warm = None if own else background.find_warm_stack(_say)
        if warm is None and not own and (starting := background.starting_stack()):
            warm = await self._wait_for(starting)
        if warm is not None:
            why_not = warm.unfit(providers, local, uses_files=uses_files)
            if why_not is None:
                if await self._connect_warm(warm):
                    return
            elif self.background and warm.auto and not warm.busy:
                # Started on first use and unused: replace it with one that fits.
                background.retire(warm.state, why_not, _say)
                replaced = warm.state
            else:
                _say(f"not using the warm stack: {why_not}")
        await self._start_embedded(providers, local_models, tools=uses_files)
        if self.background:
            self._plan_background(local_models, replaced or background.last_replaced())

    async def _wait_for(self, starting: dict[str, Any]) -> Any:
        """The warm stack that is starting, once ready; None if it is not soon."""
        from . import warm as background
        from .progress import Progress

        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTING_WAIT
        async with Progress(f"waiting for the warm stack (pid {starting.get('pid')})"):
            while loop.time() < deadline:
                found = background.find_warm_stack(_say)
                if found is not None or background.starting_stack() is None:
                    return found
                await asyncio.sleep(0.05)
        _say("the warm stack is still starting; using a stack of this command's own")
        return None

    def _plan_background(self, local_models: Counter[str], replaced: dict[str, Any] | None) -> None:
        """Start the warm stack for the next commands: :data:`SPAWN_DELAY` from now, or
        once this command is done when it runs a local model (loading a second copy
        meanwhile would slow this command's run on the same cores).

        It serves every cloud provider, this team's local models, and what the stack it
        replaces served (living as long as that one did, if it was started by hand).
        """
        from massgen_proto.providers import BACKENDS

        from . import warm as background

        # Every cloud provider: the next command may use another team.
        providers = list(dict.fromkeys(b.provider for b in BACKENDS.values()))
        local: dict[str, int] = dict(local_models)
        auto, idle = True, None
        if replaced is not None:  # keep what the replaced stack served, and how it lived
            providers += [p for p in replaced.get("providers") or [] if p not in providers]
            for name, slots in (replaced.get("local") or {}).items():
                local[name] = max(local.get(name, 0), int(slots))
            if not replaced.get("auto"):
                auto, idle = False, float(replaced.get("idle_timeout") or 0)
        providers = [p for p in providers if p != "local"]
        if not background.may_spawn():
            return
        # Said now: once the live display is up, a line on stderr would break it.
        _say(background.spawn_note(idle))
        self._planned = (providers, local, auto, idle)
        if not local:
            self._spawn_timer = asyncio.get_running_loop().call_later(
                SPAWN_DELAY, self._spawn_pending
            )

    def _spawn_pending(self) -> None:
        """Start the planned background stack now (once)."""
        if self._spawn_timer is not None:
            self._spawn_timer.cancel()
            self._spawn_timer = None
        plan, self._planned = self._planned, None
        if plan is not None:
            self._spawn(plan)

    @staticmethod
    def _spawn(plan: Any) -> None:
        from .warm import spawn_background

        providers, local, auto, idle = plan
        spawn_background(providers, local, auto=auto, idle=idle)

    async def _connect_warm(self, warm: Any) -> bool:
        """Use the warm stack; False (and why, on stderr) when it cannot be reached."""
        import nats

        from .teams import point_local_agents

        try:
            from massgen_kit.health import inbox_prefix_for

            self.nc = await nats.connect(
                warm.url, name="massgen-cli", connect_timeout=2, max_reconnect_attempts=3,
                inbox_prefix=inbox_prefix_for(warm.url, "cli"),
            )  # fmt: skip
            point_local_agents(self.config, warm.local_endpoints)
            self.warm = warm
            _say(f"using the warm stack at {warm.url} (massgen status)")
            if self.debug:
                _say(f"debug: warm stack service logs in {warm.log_dir}")
            return True
        except Exception as error:  # noqa: BLE001 - any failure: fall back, say why
            _say(f"warm stack at {warm.url} unreachable ({error}); starting one")
            return False

    async def _start_embedded(
        self, providers: list[str], local_models: Counter[str], *, tools: bool
    ) -> None:
        from .embedded import EmbeddedStack
        from .environment import configure_logging
        from .progress import Progress
        from .teams import point_local_agents

        # The in-process services log to ``services.log`` in the log folder.
        self._log_handle = configure_logging(self.debug, self.log_dir)
        async with Progress("starting the local stack (nats-server, orchestrator, worker)") as bar:
            self._stack = EmbeddedStack(
                providers, log_dir=self.log_dir, debug=self.debug,
                local_models=local_models, on_progress=bar.note,
                tools=tools, checks=self.checks,
            )  # fmt: skip
            try:
                # The run is created at once; its turns wait for the worker (``follow``).
                await self._stack.start(wait_for_workers=False)
            except BaseException:
                await self._stack.stop()
                self._stack = None
                raise
        point_local_agents(self.config, self._stack.local_endpoints)
        self.nc = self._stack.client

    async def create(self, question: str) -> str:
        """A fresh run id (the orchestrator creates the run when :meth:`follow` asks)."""
        from massgen_proto.ids import new_run_id

        return new_run_id()

    async def follow(
        self,
        question: str,
        on_event: Callable[[RunEvent], Any],
        *,
        history: list[Any] | None,
        run_id: str,
        cancel: asyncio.Event,
        previous_run_id: str | None = None,
    ) -> RunSummary:
        """Create the run over NATS and follow it; returns its summary.

        Raises:
            TargetUnavailable: this command's own worker died or did not start.
        """
        from .client import follow_run

        run = follow_run(
            self.nc, question, self.config, on_event,
            history=history, run_id=run_id, cancel=cancel, previous_run_id=previous_run_id,
        )  # fmt: skip
        if self._stack is None:
            return await run
        from .embedded import WorkerStartError

        try:
            return await self._stack.guarded(run)
        except WorkerStartError as error:
            raise TargetUnavailable(str(error)) from error

    def alive(self) -> bool:
        return self._stack is None or self._stack.worker_alive()

    async def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.stop()
            self._spawn_pending()  # not yet started (a local model, or a short command)
        elif self.nc is not None:
            nc, self.nc = self.nc, None
            with contextlib.suppress(Exception):
                await nc.drain()
        handle, self._log_handle = self._log_handle, None
        if handle is not None:
            handle.close()


class ApiTarget:
    """A remote deployment behind its HTTP API (``massgen --api URL``).

    :meth:`create` creates the run on the server (which picks its id); :meth:`follow`
    then streams its events like :meth:`StackTarget.follow` does over NATS.

    Args:
        url: the API's base URL (``http://host:port``).
        token: bearer token, if the API wants one.
        config: the team config mapping (None with ``team``).
        team: a team configured on the server (``GET /v1/teams``).
    """

    def __init__(
        self, url: str, token: str | None, config: dict[str, Any] | None, team: str | None
    ) -> None:
        from .api_client import ApiClient

        self.api = ApiClient(url, token)
        self.kind = "api"
        self.config = config or {}
        self.team = team
        self.warnings: list[str] = []
        """The API's warnings about the run's config (its create response)."""

    async def start(self) -> None:
        """Nothing to start: the first request reaches the server."""

    async def create(self, question: str) -> str:
        run_id = await self.api.create_run(
            question, config=None if self.team else self.config, team=self.team
        )
        self.warnings = list(self.api.warnings)
        return run_id

    async def follow(
        self,
        question: str,
        on_event: Callable[[RunEvent], Any],
        *,
        history: list[Any] | None,
        run_id: str,
        cancel: asyncio.Event,
        previous_run_id: str | None = None,
    ) -> RunSummary:
        """Follow the already created run ``run_id`` (``question`` was sent by create).

        Sessions run on a local stack (``massgen --api`` takes no ``--session``), so no
        ``previous_run_id`` reaches here; the API's own sessions carry it server-side.
        """
        if previous_run_id is not None:
            raise ValueError("an --api run cannot continue a local session's workspace")
        return await self.api.follow(run_id, on_event, cancel=cancel)

    def alive(self) -> bool:
        return True

    async def stop(self) -> None:
        await self.api.close()


@contextlib.asynccontextmanager
async def opened(
    target: RunTarget, *, debug: bool, log_folder: Path | None
) -> AsyncIterator[RunTarget]:
    """Set up logging, start ``target`` and yield it; stop it and close the log after.

    Args:
        target: where the runs go.
        debug: verbose in-process service logs.
        log_folder: where ``services.log`` goes (None: nowhere).

    Raises:
        TargetUnavailable: the target did not start (it is stopped again first).
    """
    from .environment import configure_logging

    # A stack target sets up logging only for a stack of its own (services in this
    # process); a command on a warm stack runs none.
    own = isinstance(target, StackTarget)
    handle = None if own else configure_logging(debug, log_folder)
    try:
        await target.start()
        yield target
    finally:
        await target.stop()
        if handle is not None:
            handle.close()

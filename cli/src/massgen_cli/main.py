"""The ``massgen`` command: ask a team a question, live, on a warm or embedded stack.

    massgen [options] "question"        one run (live display on a terminal)
    massgen [options]                   interactive multi-turn session
    massgen runs list | show RUN [--table] | replay RUN [--speed X]
    massgen up [--providers a,b] [--local MODEL] | down | status
    massgen serve api [--host H] [--port P] [--teams-dir DIR] [--providers a,b] [--nats URL]
    massgen --api URL [--token T] [--config FILE | --model M | --team NAME] "question"
    massgen eval BENCHMARK [--config FILE] [--subset A:B:C] ... | eval show RESULTS

``runs``, ``up``, ``down``, ``status``, ``serve`` and ``eval`` are subcommands only as the
*first* argument and spelled exactly so; ``massgen -- up`` asks the question "up".

Exit codes: 0 completed, 2 bad usage or config, 3 timed out or failed,
130 cancelled with Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from .teams import point_local_agents

__all__ = ["SUBCOMMANDS", "main"]

EXIT_OK, EXIT_USAGE, EXIT_RUN_FAILED, EXIT_CANCELLED = 0, 2, 3, 130
SUBCOMMANDS = ("runs", "up", "down", "status", "serve", "eval")
_QUIT = frozenset({"/quit", "/exit", "/q"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="massgen",
        description="Ask a team of LLM agents a question; they answer, vote and converge. "
        "With no question: an interactive session. Subcommands (first argument only): "
        "runs, up, down, status, serve, eval.",
    )
    parser.add_argument("question", nargs="?", help="the question or task (none: interactive)")
    source = parser.add_argument_group("team (one of)")
    source.add_argument("--config", help="team config file, or a bundled example's name")
    source.add_argument("--model", help="quick mode: one agent on this model")
    source.add_argument("--team", help="with --api: a team configured on the server")
    parser.add_argument(
        "--backend", help="backend type for --model (e.g. openai, claude, chatcompletion)"
    )
    parser.add_argument("--base-url", help="endpoint for --model (OpenAI-compatible servers)")
    parser.add_argument("--system-message", help="system prompt for --model")
    parser.add_argument("--list-examples", action="store_true", help="list bundled example teams")
    parser.add_argument(
        "--display",
        choices=("rich_terminal", "terminal", "simple"),
        help="display type (default: the config's ui.display_type, else rich_terminal on a "
        "terminal and simple otherwise)",
    )
    parser.add_argument(
        "--no-display", action="store_true", help="no live display: print only the final answer"
    )
    parser.add_argument("--no-logs", action="store_true", help="do not write a log folder")
    parser.add_argument(
        "--debug", action="store_true", help="verbose logs in the log folder (path is printed)"
    )
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: one result object on stdout (display goes to stderr)",
    )
    parser.add_argument("--log-dir", type=Path, help="log root (default .massgen/logs)")
    parser.add_argument("--session", help="resume (or add one turn to) a saved session")
    parser.add_argument(
        "--embedded", action="store_true", help="start a private stack even if one is warm"
    )
    remote = parser.add_argument_group("remote deployment")
    remote.add_argument(
        "--api", metavar="URL", help="run on the HTTP API at URL (e.g. http://host:8080)"
    )
    remote.add_argument("--token", help="bearer token for --api (default $MASSGEN_API_TOKEN)")
    return parser  # fmt: skip


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"massgen: {message}", file=sys.stderr)
    return code


def _load_dotenv() -> None:
    try:
        from dotenv import load_dotenv
    except ImportError:  # optional convenience
        return
    load_dotenv(Path.cwd() / ".env", override=False)
    load_dotenv(Path.home() / ".env", override=False)


def _resolve_config(args: argparse.Namespace) -> tuple[dict[str, Any], str | None, str | None]:
    """Return (config mapping, source name, note for the user)."""
    from massgen_proto.config import load_config, parse_config

    from .bundled import resolve_config_path
    from .teams import default_team, quick_config

    if args.config and args.model:
        raise ValueError("--config and --model are exclusive: give one")
    if args.config:
        config = load_config(resolve_config_path(args.config))
        return config.model_dump(mode="json"), args.config, None
    if args.model:
        data = quick_config(args.model, args.backend, args.base_url, args.system_message)
        return parse_config(data, "--model").model_dump(mode="json"), "--model", None
    data, note = default_team()
    return parse_config(data, "default team").model_dump(mode="json"), "default team", note


def _missing_keys(config: dict[str, Any]) -> list[str]:
    from massgen_proto.providers import BACKENDS

    missing = []
    for agent in config["agents"]:
        backend = agent["backend"]
        env = BACKENDS[backend["type"]].api_key_env
        if env and not backend.get("api_key") and not os.environ.get(env):
            missing.append(f"agent {agent['id']!r} ({backend['type']}) needs {env} to be set")
    return missing


# -- progress ------------------------------------------------------------------------


class Progress:
    """ "Still working" feedback on stderr while something slow happens (never a silent wait).

    On a terminal: one line with a spinner and the elapsed seconds, rewritten in
    place. Otherwise: a line when the note changes and every 10 s.
    """

    _FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, text: str, stream: TextIO | None = None) -> None:
        self.text = text
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        self._started = time.monotonic()
        self._task: asyncio.Future | None = None
        self._said = ""
        self._last_line = 0.0

    def note(self, text: str) -> None:
        """Change what is being waited for."""
        self.text = text
        if not self.tty:
            self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self._started
        if self.tty:
            frame = self._FRAMES[int(elapsed * 10) % len(self._FRAMES)]
            self.out.write(f"\r\x1b[K{frame} {self.text} ({elapsed:.0f}s)")
        elif self.text != self._said or elapsed - self._last_line >= 10:
            self.out.write(f"massgen: {self.text} ({elapsed:.0f}s)\n")
            self._said, self._last_line = self.text, elapsed
        self.out.flush()

    async def _spin(self) -> None:
        while True:
            self._line()
            await asyncio.sleep(0.1 if self.tty else 1.0)

    async def __aenter__(self) -> Progress:
        self._task = asyncio.ensure_future(self._spin())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.tty:
            self.out.write("\r\x1b[K")
            self.out.flush()


# -- the stack a command runs on ------------------------------------------------------


class Runner:
    """The stack questions run on: a warm one (``massgen up``) or a private embedded one.

    Args:
        config: the run config mapping (local agents are pointed at their server).
        service_log_dir: where an embedded stack writes services.log / worker.log.
    """

    def __init__(self, args: argparse.Namespace, config: dict[str, Any], log_dir: Path | None):
        from .notices import config_warnings

        self.args = args
        self.config = config
        self.warnings = config_warnings(config)
        """Config keys accepted but not applied (printed, and kept in each log folder)."""
        self.log_dir = log_dir
        self.nc: Any = None
        self._stack: Any = None
        self.warm: Any = None

    async def start(self) -> None:
        """Connect to a warm stack or start a private one."""
        from massgen_kit.runtime import loaded

        try:
            await self._start()
        finally:
            loaded()  # start-up's imports are done: collect as usual from here on

    async def _start(self) -> None:
        from massgen_proto.config import parse_config

        from .warm import find_warm_stack

        run_config = parse_config(self.config)
        providers = list(dict.fromkeys(a.backend.provider for a in run_config.agents))
        local = [a.backend.model for a in run_config.agents if a.backend.type == "local"]
        warm = None if self.args.embedded else find_warm_stack()
        if warm is not None:
            why_not = warm.serves(providers, local)
            if why_not is None:
                import nats

                try:
                    from massgen_kit.health import inbox_prefix_for

                    self.nc = await nats.connect(
                        warm.url, name="massgen-cli", connect_timeout=2, max_reconnect_attempts=3,
                        inbox_prefix=inbox_prefix_for(warm.url, "cli"),
                    )  # fmt: skip
                    point_local_agents(self.config, warm.local_endpoints)
                    self.warm = warm
                    self._say(f"using the warm stack at {warm.url} (massgen status)")
                    if self.args.debug:
                        self._say(f"debug: warm stack service logs in {warm.log_dir}")
                    return
                except Exception as error:  # noqa: BLE001 - any failure: fall back, say why
                    self._say(f"warm stack at {warm.url} unreachable ({error}); starting one")
            else:
                self._say(f"not using the warm stack: {why_not}")
        from .embedded import EmbeddedStack, local_models_of

        async with Progress("starting the local stack (nats-server, orchestrator, worker)") as bar:
            self._stack = EmbeddedStack(
                providers, log_dir=self.log_dir, debug=self.args.debug,
                local_models=local_models_of(run_config), on_progress=bar.note,
            )  # fmt: skip
            try:
                await self._stack.start()
            except BaseException:
                await self._stack.stop()
                self._stack = None
                raise
        point_local_agents(self.config, self._stack.local_endpoints)
        self.nc = self._stack.client

    def _say(self, text: str) -> None:
        print(f"massgen: {text}", file=sys.stderr, flush=True)

    async def follow(
        self,
        question: str,
        on_event: Any,
        *,
        history: list[Any] | None,
        run_id: str,
        cancel: asyncio.Event,
    ) -> Any:
        """Create the run over NATS and follow it; returns its summary."""
        from .client import follow_run

        return await follow_run(
            self.nc, question, self.config, on_event,
            history=history, run_id=run_id, cancel=cancel,
        )  # fmt: skip

    async def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.stop()
        elif self.nc is not None:
            nc, self.nc = self.nc, None
            with contextlib.suppress(Exception):
                await nc.drain()


class ApiRunner:
    """A remote deployment behind its HTTP API (``massgen --api URL``).

    The run is created first (:meth:`create`: the server picks its id), then
    :meth:`follow` streams its events like :meth:`Runner.follow` does over NATS.
    """

    def __init__(
        self, url: str, token: str | None, config: dict[str, Any] | None, team: str | None
    ) -> None:
        from .api_client import ApiClient

        self.api = ApiClient(url, token)
        self.config = config or {}
        self.team = team
        self.warnings: list[str] = []
        """The API's warnings about the run's config (its create response)."""

    async def create(self, question: str) -> str:
        run_id = await self.api.create_run(
            question, config=None if self.team else self.config, team=self.team
        )
        self.warnings = list(self.api.warnings)
        return run_id

    async def follow(
        self,
        question: str,
        on_event: Any,
        *,
        history: list[Any] | None,
        run_id: str,
        cancel: asyncio.Event,
    ) -> Any:
        """Follow the already created run ``run_id`` (``question`` was sent by create)."""
        return await self.api.follow(run_id, on_event, cancel=cancel)

    async def stop(self) -> None:
        await self.api.close()


# -- one run ---------------------------------------------------------------------------


def _display_kind(args: argparse.Namespace, config: dict[str, Any], stream: TextIO) -> str:
    from .display import choose_display_type

    ui = config.get("ui") or {}
    configured = ui.get("display_type") or ui.get("type")
    return choose_display_type(args.display, args.no_display, configured, stream)


async def _run_turn(
    runner: Runner | ApiRunner,
    args: argparse.Namespace,
    question: str,
    history: list[Any] | None = None,
    interactive: bool = False,
    run_id: str | None = None,
    folder: Path | None = None,
) -> tuple[int, Any, Path | None]:
    """Run one question: display, log folder, Ctrl-C; returns (exit code, summary, log dir)."""
    from massgen_proto.ids import new_run_id

    from .client import RunRefused
    from .display import make_display, showing
    from .runlog import RunLog, default_log_root, run_log_dir

    run_id = run_id or new_run_id()
    log_dir = folder or (
        None if args.no_logs else run_log_dir(args.log_dir or default_log_root(), run_id)
    )
    runlog = RunLog(log_dir) if log_dir is not None else None
    if runlog is not None:
        runlog.write_warnings(runner.warnings)
    stream = sys.stderr if args.output == "json" else sys.stdout
    kind = _display_kind(args, runner.config, stream)
    display = make_display(kind, stream)
    if args.debug and log_dir is not None:
        print(f"massgen: debug logs for this run in {log_dir}", file=sys.stderr)

    def on_event(event: Any) -> None:
        if runlog is not None:
            runlog.write(event)
        display(event)

    cancel = asyncio.Event()
    interrupts = 0

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            os._exit(EXIT_CANCELLED)  # a second Ctrl-C: leave at once
        what = "this turn" if interactive else "the run"
        print(f"\nmassgen: cancelling {what} (Ctrl-C again to quit at once)", file=sys.stderr)
        cancel.set()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        async with showing(display):
            summary = await runner.follow(
                question, on_event, history=history, run_id=run_id, cancel=cancel
            )
    except RunRefused as error:
        return _fail(f"run refused: {error}"), None, log_dir
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if runlog is not None:
        runlog.close(summary)
    code = {"completed": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(summary.status, EXIT_RUN_FAILED)
    if args.output == "json":
        result = summary.to_json(log_dir=str(log_dir) if log_dir else None)
        if runner.warnings:
            result["warnings"] = runner.warnings
        print(json.dumps(result, indent=2))
    elif log_dir is not None and kind != "final":
        print(f"logs: {log_dir}", file=sys.stderr)
        print(f"coordination table: massgen runs show {run_id} --table", file=sys.stderr)
    return code, summary, log_dir


def _configure_logging(args: argparse.Namespace, folder: Path | None) -> Any:
    from massgen_kit.logsetup import configure_logging

    handle = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / "services.log").open("a", encoding="utf-8")
    configure_logging("debug" if args.debug else "info", handle or open(os.devnull, "w"))  # noqa: SIM115
    return handle


async def _single(args: argparse.Namespace, config: dict[str, Any], question: str) -> int:
    from massgen_proto.ids import new_run_id

    from .runlog import default_log_root, run_log_dir

    # The stack's own logs go with the run (one folder per command).
    run_id = new_run_id()
    folder = None if args.no_logs else run_log_dir(args.log_dir or default_log_root(), run_id)
    handle = _configure_logging(args, folder)
    runner = Runner(args, config, folder)
    try:
        try:
            await runner.start()
        except RuntimeError as error:  # local model or nats-server did not start
            return _fail(str(error), EXIT_RUN_FAILED)
        code, _summary, _log_dir = await _run_turn(
            runner, args, question, run_id=run_id, folder=folder
        )
    finally:
        await runner.stop()
        if handle is not None:
            handle.close()
    return code


# -- a remote deployment (--api) -------------------------------------------------------


def _api_main(args: argparse.Namespace) -> int:
    """``massgen --api URL "question"``: the same run, display and log folder, over HTTP."""
    from massgen_proto.config import ConfigError

    if args.question is None:
        return _fail("--api needs a question (interactive sessions run on a local stack)")
    if args.session or args.embedded:
        return _fail("--session and --embedded do not go with --api")
    given = [f"--{name}" for name in ("config", "model", "team") if getattr(args, name)]
    if len(given) > 1:
        return _fail(f"{' and '.join(given)} are exclusive: give one")
    if not given:
        return _fail(
            "--api needs a team: --config FILE, --model MODEL, or --team NAME "
            "(a team configured on the server, GET /v1/teams)"
        )
    config = None
    if not args.team:
        try:
            config, _source, _note = _resolve_config(args)
        except ConfigError as error:
            return _fail(f"config error:\n{error}")
        except ValueError as error:
            return _fail(str(error))
    token = args.token or os.environ.get("MASSGEN_API_TOKEN") or None
    return asyncio.run(_api_single(args, config, token, args.question))


async def _api_single(
    args: argparse.Namespace, config: dict[str, Any] | None, token: str | None, question: str
) -> int:
    from .api_client import ApiError, ApiUnreachable
    from .runlog import default_log_root, run_log_dir

    handle = _configure_logging(args, None)  # nothing of ours logs; keep stdout clean
    runner = ApiRunner(args.api, token, config, args.team)
    try:
        try:
            run_id = await runner.create(question)
        except ApiError as error:
            return _fail(f"the API refused the run: {error}")
        except ApiUnreachable as error:
            return _fail(str(error), EXIT_RUN_FAILED)
        print(f"massgen: run {run_id} on {runner.api.url}", file=sys.stderr, flush=True)
        from .notices import print_warnings

        print_warnings(runner.warnings)  # the API's view of the config
        # The log folder is named after the server's run id (massgen runs show ID).
        folder = None if args.no_logs else run_log_dir(args.log_dir or default_log_root(), run_id)
        try:
            code, _summary, _log_dir = await _run_turn(
                runner, args, question, run_id=run_id, folder=folder
            )
        except ApiUnreachable as error:
            return _fail(str(error), EXIT_RUN_FAILED)
    finally:
        await runner.stop()
        if handle is not None:
            handle.close()
    return code


# -- interactive -----------------------------------------------------------------------


async def _ask(prompt: str) -> str | None:
    """Read one line in a daemon thread (the event loop keeps serving); None at EOF."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def read() -> None:
        try:
            line: str | None = input(prompt)
        except EOFError:
            line = None
        except Exception:  # noqa: BLE001 - a closed stdin is an end of input too
            line = None
        loop.call_soon_threadsafe(lambda: future.done() or future.set_result(line))

    threading.Thread(target=read, name="massgen-input", daemon=True).start()
    return await future


async def _interactive(args: argparse.Namespace, config: dict[str, Any], session: Any) -> int:
    from .session import TurnRecord

    handle = _configure_logging(args, session.directory)
    runner = Runner(args, config, session.directory)
    turns = session.turns()
    print(
        f"MassGen interactive session {session.id}"
        + (f" (resumed: {len(turns)} turn(s))" if turns else "")
        + "\n  /clear forgets the conversation, /quit /exit /q or Ctrl-D leave, "
        "Ctrl-C cancels a running turn, /table shows the last coordination table\n"
        f"  saved in {session.directory}",
        flush=True,
    )
    try:
        try:
            await runner.start()
        except RuntimeError as error:  # local model or nats-server did not start
            return _fail(str(error), EXIT_RUN_FAILED)
        loop = asyncio.get_running_loop()
        last_interrupt = [0.0]
        leave = asyncio.Event()

        def on_idle_sigint() -> None:
            now = time.monotonic()
            if now - last_interrupt[0] < 2.0:
                leave.set()
                return
            last_interrupt[0] = now
            print("\n(Ctrl-C again to leave, or /quit)", flush=True)

        last_log: Path | None = None
        while True:
            loop.add_signal_handler(signal.SIGINT, on_idle_sigint)
            asked = asyncio.ensure_future(_ask(f"\n[turn {session.next_number()}] > "))
            left = asyncio.ensure_future(leave.wait())
            await asyncio.wait({asked, left}, return_when=asyncio.FIRST_COMPLETED)
            loop.remove_signal_handler(signal.SIGINT)
            if left.done():
                asked.cancel()
                print()
                break
            left.cancel()
            line = asked.result()
            if line is None:
                print()
                break
            question = line.strip()
            if not question:
                continue
            if question.lower() in _QUIT:
                break
            if question.lower() == "/clear":
                session.clear()
                print("conversation cleared: the next question starts fresh", flush=True)
                continue
            if question.lower() in ("/table", "r"):
                table = last_log / "coordination_table.txt" if last_log else None
                print(table.read_text() if table and table.exists() else "no finished turn yet")
                continue
            if question.lower() in ("/help", "/?"):
                print("/clear  /table  /quit  — anything else is a question for the team")
                continue
            number = session.next_number()
            started = time.monotonic()
            code, summary, log_dir = await _run_turn(
                runner, args, question, history=session.history(), interactive=True
            )
            if summary is None:
                continue
            last_log = log_dir
            session.record(
                TurnRecord(
                    number=number, question=question, answer=summary.final_answer,
                    status=summary.status, winner=summary.winner, run_id=summary.run_id,
                    log_dir=str(log_dir) if log_dir else None,
                    seconds=round(time.monotonic() - started, 2),
                )
            )  # fmt: skip
        print(f"session saved: {session.directory / 'SESSION_SUMMARY.md'}", flush=True)
        print(f"resume with: massgen --session {session.id}", flush=True)
        return EXIT_OK
    finally:
        await runner.stop()
        if handle is not None:
            handle.close()


# -- subcommands -----------------------------------------------------------------------


def _subcommand(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="massgen", description="massgen subcommands")
    sub = parser.add_subparsers(dest="command", required=True)
    runs = sub.add_parser("runs", help="runs on disk").add_subparsers(dest="action", required=True)
    for name in ("list", "show", "replay"):
        cmd = runs.add_parser(name)
        cmd.add_argument("--log-dir", type=Path, help="log root (default .massgen/logs)")
        if name != "list":
            cmd.add_argument("run", help="run id, folder, unique prefix, or 'last'")
        if name == "show":
            cmd.add_argument("--table", action="store_true", help="the coordination table")
            cmd.add_argument("--no-cost", action="store_true", help="skip the cost estimate")
        if name == "replay":
            cmd.add_argument(
                "--speed", type=float, default=1.0, help="2 = twice as fast; 0 = at once"
            )
            cmd.add_argument("--display", choices=("rich_terminal", "terminal", "simple"))
    up = sub.add_parser("up", help="start a warm local stack in the background")
    up.add_argument("--providers", help="worker pools to serve (default: all)")
    up.add_argument("--local", action="append", default=[], help="also run this local model")
    up.add_argument("--config", help="serve what this team config needs")
    up.add_argument("--no-local", action="store_true", help="never start a local model")
    up.add_argument("--debug", action="store_true")
    sub.add_parser("down", help="stop the warm stack")
    sub.add_parser("status", help="show the warm stack")
    serve = sub.add_parser("serve", help="serve the HTTP API").add_subparsers(
        dest="service", required=True
    )
    api = serve.add_parser(
        "api",
        help="the HTTP API on a private stack (or on --nats URL) until Ctrl-C / SIGTERM",
        description="Serve the HTTP API. Without --nats: also a private stack (nats-server, "
        "orchestrator, gateway, one worker). Bearer tokens: $MASSGEN_API_TOKENS / "
        "$MASSGEN_API_TOKENS_FILE (none: auth off).",
    )
    api.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8080, help="listen port (default 8080; 0: any)")
    api.add_argument("--teams-dir", type=Path, help="folder of named team files (<name>.yaml)")
    api.add_argument(
        "--providers", help="worker pools of the private stack (default: every provider but local)"
    )
    api.add_argument("--nats", metavar="URL", help="use this NATS deployment; start no stack")
    api.add_argument("--log-dir", type=Path, help="service logs here (default: warnings on stderr)")
    api.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "runs":
        return _runs(args)
    if args.command == "serve":
        return _serve_api(args)
    from . import warm

    if args.command == "down":
        return warm.stack_down()
    if args.command == "status":
        return warm.stack_status()
    return _up(args)


def _up(args: argparse.Namespace) -> int:
    from massgen_proto.config import ConfigError, load_config, parse_config

    from . import warm
    from .bundled import resolve_config_path
    from .teams import default_team

    _load_dotenv()
    local: dict[str, int] = {}
    if args.config:
        try:
            config = load_config(resolve_config_path(args.config))
        except ConfigError as error:
            return _fail(f"config error:\n{error}")
        providers = list(dict.fromkeys(a.backend.provider for a in config.agents))
        for agent in config.agents:
            if agent.backend.type == "local":
                local[agent.backend.model] = local.get(agent.backend.model, 0) + 1
    else:
        providers = _providers(args.providers)
        if not args.providers and not args.no_local:
            # The default team runs on the local model when no provider key is set.
            team, _note = default_team()
            for agent in parse_config(team).agents:
                if agent.backend.type == "local":
                    local[agent.backend.model] = local.get(agent.backend.model, 0) + 1
    for name in args.local:
        local[name] = max(local.get(name, 0), 3)
    if args.no_local:
        local = {}
    tty = sys.stderr.isatty()

    def progress(text: str) -> None:
        if tty:
            sys.stderr.write(f"\r\x1b[Kstarting warm stack: {text}")
            sys.stderr.flush()

    def say(text: str) -> None:
        if tty:
            sys.stderr.write("\r\x1b[K")
        print(text, flush=True)

    return warm.stack_up(providers, local, say=say, progress=progress, debug=args.debug)


def _providers(spec: str | None, *, local: bool = True) -> list[str]:
    """Worker pools to serve: ``--providers a,b`` as given, else every provider of
    ``BACKENDS`` (without ``local`` when ``local`` is False)."""
    if spec:
        return list(dict.fromkeys(p.strip() for p in spec.split(",") if p.strip()))
    from massgen_proto.providers import BACKENDS

    every = dict.fromkeys(b.provider for b in BACKENDS.values())
    return [p for p in every if local or p != "local"]


def _listen_socket(host: str, port: int) -> Any:
    """A bound (not yet listening) socket for uvicorn; raises OSError when taken."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _loopback(host: str) -> bool:
    """True for addresses only this machine reaches."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve_api(args: argparse.Namespace) -> int:
    """``massgen serve api``: the HTTP API in-process, on a private stack or on ``--nats``."""
    try:
        from massgen_api.settings import ApiSettings
        from massgen_api.teams import load_teams
    except ImportError:
        return _fail("massgen serve api needs the massgen-api package installed")
    from massgen_proto.config import ConfigError
    from pydantic import ValidationError

    _load_dotenv()
    overrides: dict[str, Any] = {
        "host": args.host, "port": args.port, "log_level": "debug" if args.debug else "info",
    }  # fmt: skip
    if args.teams_dir is not None:
        overrides["teams_dir"] = args.teams_dir
    if args.nats:
        overrides["nats_url"] = args.nats
    try:
        settings = ApiSettings.from_env(**overrides)  # tokens: $MASSGEN_API_TOKENS(_FILE)
        if not settings.tokens and _loopback(args.host):
            # This machine's user serving themselves: single-user mode, as announced.
            settings = settings.model_copy(update={"single_user": True})
        settings.check_auth()
        load_teams(settings.teams_dir)  # a bad team file fails before anything starts
    except ConfigError as error:
        return _fail(f"team config error:\n{error}")
    except (ValidationError, ValueError, OSError) as error:
        return _fail(f"bad API settings: {error}")
    try:
        sock = _listen_socket(args.host, args.port)
    except OSError as error:
        return _fail(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}")
    providers = None if args.nats else _providers(args.providers, local=False)
    log_handle = None
    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
        log_handle = (args.log_dir / "services.log").open("a", encoding="utf-8")
    from massgen_kit.logsetup import configure_logging

    level = "debug" if args.debug else ("info" if log_handle else "warning")
    configure_logging(level, log_handle or sys.stderr)
    try:
        return asyncio.run(_serve_api_async(args, settings, providers, sock))
    finally:
        sock.close()
        if log_handle is not None:
            log_handle.close()


async def _serve_api_async(
    args: argparse.Namespace, settings: Any, providers: list[str] | None, sock: Any
) -> int:
    import uvicorn
    from massgen_api.app import create_app

    from .embedded import EmbeddedStack

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:  # ours (below) also stop the stack
            yield

    stop = asyncio.Event()
    server: Server | None = None
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set() and server is not None:
            server.force_exit = True  # a second Ctrl-C: do not wait for open streams
        stop.set()
        if server is not None:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    stack: EmbeddedStack | None = None
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    try:
        if providers is not None:
            stack = EmbeddedStack(providers, log_dir=args.log_dir, debug=args.debug)
            async with Progress("starting the stack (nats-server, orchestrator, worker)"):
                starting = asyncio.ensure_future(stack.start())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not starting.done():
                    starting.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await starting
                    return EXIT_CANCELLED
                starting.result()  # raises when the stack did not start
            settings = settings.model_copy(
                update={"nats_url": stack.nats.url, "memory_streams": True}
            )
        if stop.is_set():
            return EXIT_CANCELLED
        server = Server(
            uvicorn.Config(
                create_app(settings), log_level="warning", access_log=False, lifespan="on",
                timeout_graceful_shutdown=5,
            )
        )  # fmt: skip
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not serving.done():  # noqa: ASYNC110 (a flag only)
            if stop.is_set():  # still starting (e.g. waiting for NATS): give up at once
                serving.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception, SystemExit):
                    await serving
                return _fail("stopped before the API started", EXIT_CANCELLED)
            await asyncio.sleep(0.05)
        if server.started:
            where = f"NATS {settings.nats_url}" if stack is None else "a private stack"
            auth = "bearer tokens" if settings.auth_enabled else "no auth"
            print(f"massgen: serving the API at {url} on {where} ({auth}; Ctrl-C stops it)",
                  flush=True)  # fmt: skip
            if providers is not None:
                print(f"massgen: providers: {', '.join(providers)}", flush=True)
        try:
            await serving
        except SystemExit:
            pass
        if not server.started:
            why = f"the API did not start (is NATS at {settings.nats_url} up?)"
            return _fail(why, EXIT_RUN_FAILED)
        print("massgen: API stopped", file=sys.stderr, flush=True)
        return EXIT_OK
    except (RuntimeError, OSError) as error:  # the worker or nats-server did not start
        return _fail(str(error), EXIT_RUN_FAILED)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if stack is not None:
            await stack.stop()


def _runs(args: argparse.Namespace) -> int:
    from . import runs
    from .runlog import default_log_root

    root = args.log_dir or default_log_root()
    if args.action == "list":
        return runs.print_run_list(root, sys.stdout)
    try:
        run = runs.find_run(root, args.run)
    except runs.RunNotFound as error:
        return _fail(str(error))
    if args.action == "show":
        return runs.show_run(run, sys.stdout, table=args.table, cost=not args.no_cost)
    from .display import choose_display_type, make_display

    events = runs.load_events(run.path)
    if not events:
        return _fail(f"{run.path}: no events recorded")
    clock = runs.ReplayClock(args.speed)
    kind = choose_display_type(args.display, False, None, sys.stdout)
    display = make_display(kind, sys.stdout, clock=clock)
    asyncio.run(runs.replay(events, display, clock, speed=args.speed))
    return EXIT_OK


# -- entry point -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``massgen`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "eval":  # the evals package parses its own arguments
        from .evals.cli import main as eval_main

        return eval_main(argv[1:])
    if argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv)
    args = _parser().parse_args(argv)
    if args.list_examples:
        from .bundled import examples

        for name, (_path, description) in examples().items():
            print(f"{name:<28} {description}")
        print('\nuse one with: massgen --config NAME "question"')
        return EXIT_OK
    _load_dotenv()
    if args.api:
        return _api_main(args)
    if args.team or args.token:
        return _fail("--team and --token go with --api URL")
    from . import early_worker
    from .warm import find_warm_stack

    # Start-up is mostly imports: no cyclic GC until the stack is reached (Runner.start).
    gc.disable()
    if args.embedded or find_warm_stack() is None:
        # A stack of our own is likely: start its worker (seconds of imports) now.
        early_worker.start()
    try:
        return _question_main(args)
    finally:
        early_worker.discard()
        gc.enable()  # when the command ended before reaching a stack


def _question_main(args: argparse.Namespace) -> int:
    """A question or an interactive session, on a warm or embedded stack."""
    from massgen_proto.config import ConfigError

    session = None
    if args.session:
        from .session import Session, SessionNotFound, default_session_root

        try:
            session = Session.open(default_session_root(), args.session)
        except SessionNotFound as error:
            return _fail(str(error))
        source = session.meta.get("source") or {}
        if not args.config and not args.model:
            for key in ("config", "model", "backend", "base_url", "system_message"):
                if source.get(key) and not getattr(args, key):
                    setattr(args, key, source[key])
    try:
        config, _source, note = _resolve_config(args)
    except ConfigError as error:
        return _fail(f"config error:\n{error}")
    except ValueError as error:
        return _fail(str(error))
    missing = _missing_keys(config)
    if missing:
        return _fail("missing API keys:\n  " + "\n  ".join(missing))
    if note:
        print(f"massgen: {note}", file=sys.stderr)
    from .notices import config_warnings, print_warnings

    print_warnings(config_warnings(config))  # keys accepted but not applied
    if args.question is None:
        if args.output == "json":
            return _fail("--output json needs a question")
        if session is None:
            from .session import Session, default_session_root

            source = {
                "config": str(Path(args.config).resolve())
                if args.config and Path(args.config).exists()
                else args.config,
                "model": args.model, "backend": args.backend,
                "base_url": args.base_url, "system_message": args.system_message,
            }  # fmt: skip
            session = Session.create(default_session_root(), source)
        return asyncio.run(_interactive(args, config, session))
    if session is not None:
        return asyncio.run(_session_turn(args, config, session, args.question))
    return asyncio.run(_single(args, config, args.question))


async def _session_turn(
    args: argparse.Namespace, config: dict[str, Any], session: Any, question: str
) -> int:
    """``massgen --session ID "question"``: one more turn of a saved session."""
    from .session import TurnRecord

    handle = _configure_logging(args, session.directory)
    runner = Runner(args, config, session.directory)
    try:
        try:
            await runner.start()
        except RuntimeError as error:  # local model or nats-server did not start
            return _fail(str(error), EXIT_RUN_FAILED)
        number = session.next_number()
        started = time.monotonic()
        code, summary, log_dir = await _run_turn(runner, args, question, session.history())
        if summary is not None:
            session.record(
                TurnRecord(
                    number=number, question=question, answer=summary.final_answer,
                    status=summary.status, winner=summary.winner, run_id=summary.run_id,
                    log_dir=str(log_dir) if log_dir else None,
                    seconds=round(time.monotonic() - started, 2),
                )
            )  # fmt: skip
        return code
    finally:
        await runner.stop()
        if handle is not None:
            handle.close()


if __name__ == "__main__":
    sys.exit(main())

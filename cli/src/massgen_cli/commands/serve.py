"""``massgen serve api``: the HTTP API in-process (uvicorn), on a private stack or ``--nats``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from ..exits import EXIT_CANCELLED, EXIT_OK, EXIT_RUN_FAILED, fail
from .stack import providers as worker_pools

__all__ = ["serve_api"]


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


def serve_api(args: argparse.Namespace) -> int:
    """Check the settings and team files, bind the port, then serve until Ctrl-C / SIGTERM."""
    try:
        from massgen_api.settings import ApiSettings
        from massgen_api.teams import load_teams
    except ImportError:
        return fail("massgen serve api needs the massgen-api package installed")
    from massgen_proto.config import ConfigError
    from pydantic import ValidationError

    from ..environment import load_dotenv

    load_dotenv()
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
        return fail(f"team config error:\n{error}")
    except (ValidationError, ValueError, OSError) as error:
        return fail(f"bad API settings: {error}")
    try:
        sock = _listen_socket(args.host, args.port)
    except OSError as error:
        return fail(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}")
    return _serve_with_logs(args, settings, sock)


def _serve_with_logs(args: argparse.Namespace, settings: Any, sock: Any) -> int:
    """Service logs to ``--log-dir``/services.log (else warnings on stderr) while serving."""
    from massgen_kit.logsetup import configure_logging

    pools = None if args.nats else worker_pools(args.providers, local=False)
    log_handle = None
    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
        log_handle = (args.log_dir / "services.log").open("a", encoding="utf-8")
    level = "debug" if args.debug else ("info" if log_handle else "warning")
    configure_logging(level, log_handle or sys.stderr)
    try:
        return asyncio.run(_serve_api_async(args, settings, pools, sock))
    finally:
        sock.close()
        if log_handle is not None:
            log_handle.close()


class _Stop:
    """Ctrl-C / SIGTERM: the first stops the stack's start-up or the server gracefully,
    a second does not wait for open streams."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.server: Any = None

    def __call__(self) -> None:
        if self.event.is_set() and self.server is not None:
            self.server.force_exit = True  # a second Ctrl-C: do not wait for open streams
        self.event.set()
        if self.server is not None:
            self.server.should_exit = True


async def _serve_api_async(
    args: argparse.Namespace, settings: Any, providers: list[str] | None, sock: Any
) -> int:
    from ..embedded import EmbeddedStack

    stop = _Stop()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    stack: EmbeddedStack | None = None
    try:
        if providers is not None:
            stack = EmbeddedStack(providers, log_dir=args.log_dir, debug=args.debug)
            if not await _start_stack(stack, stop.event):
                return EXIT_CANCELLED
            settings = settings.model_copy(
                update={"nats_url": stack.nats.url, "memory_streams": True}
            )
        if stop.event.is_set():
            return EXIT_CANCELLED
        return await _serve(settings, sock, stop, providers)
    except (RuntimeError, OSError) as error:  # the worker or nats-server did not start
        return fail(str(error), EXIT_RUN_FAILED)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if stack is not None:
            await stack.stop()


async def _start_stack(stack: Any, stop: asyncio.Event) -> bool:
    """Start the private stack; False when stopped first. Raises when it did not start."""
    from ..progress import Progress

    async with Progress("starting the stack (nats-server, orchestrator, worker)"):
        starting = asyncio.ensure_future(stack.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            return False
        starting.result()  # raises when the stack did not start
    return True


async def _serve(settings: Any, sock: Any, stop: _Stop, providers: list[str] | None) -> int:
    """Run uvicorn on ``sock`` until stopped; the exit code."""
    import uvicorn
    from massgen_api.app import create_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:  # ours (_Stop) also stop the stack
            yield

    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    server = stop.server = Server(
        uvicorn.Config(
            create_app(settings), log_level="warning", access_log=False, lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )  # fmt: skip
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not serving.done():  # noqa: ASYNC110 (a flag only)
        if stop.event.is_set():  # still starting (e.g. waiting for NATS): give up at once
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception, SystemExit):
                await serving
            return fail("stopped before the API started", EXIT_CANCELLED)
        await asyncio.sleep(0.05)
    if server.started:
        where = f"NATS {settings.nats_url}" if providers is None else "a private stack"
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
        return fail(why, EXIT_RUN_FAILED)
    print("massgen: API stopped", file=sys.stderr, flush=True)
    return EXIT_OK

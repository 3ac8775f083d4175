"""What every non-HTTP service's entry point shares: a health endpoint and NATS credentials.

``HealthServer`` answers Kubernetes probes on a small HTTP port (stdlib asyncio, no
framework): ``GET /healthz`` is liveness (the event loop answers and the process is
not stopping), ``GET /readyz`` is readiness (the ``ready`` callable, e.g. "the NATS
connection is up"). Anything else is 404. Responses are plain text, one line.

``nats_url_with_credentials`` puts a user and password into every URL of a NATS
server list, so services that take only a URL can log in as their own NATS user;
``inbox_prefix_for`` gives such a connection the inbox prefix of that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from massgen_proto.subjects import inbox_prefix

__all__ = [
    "HealthServer",
    "Service",
    "credentials_from_env",
    "connect_options",
    "inbox_prefix_for",
    "nats_url_with_credentials",
    "serve_until_signalled",
]

_MAX_REQUEST_LINE = 2048


class HealthServer:
    """A minimal HTTP/1.0 server for ``/healthz``, ``/readyz`` and ``/metrics``
    (Prometheus text format, from ``massgen_kit.metrics.REGISTRY``).

    Args:
        port: TCP port; 0 picks a free one (read it back from ``port`` after start).
        ready: returns True when the service can do its work (readiness).
        alive: returns True while the process is healthy (liveness); default always.
        host: interface to bind; all interfaces by default (the kubelet probes the pod IP).
    """

    def __init__(
        self,
        port: int,
        ready: Callable[[], bool],
        alive: Callable[[], bool] | None = None,
        host: str = "0.0.0.0",
    ) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._alive = alive or (lambda: True)
        self._server: asyncio.Server | None = None
        self.stopping = False
        """Set on shutdown: readiness fails at once so no new traffic is routed here."""

    async def start(self) -> HealthServer:
        """Bind and serve in the background."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the listening socket. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    def status(self, path: str) -> tuple[int, str]:
        """The probe answer for ``path``: ``(HTTP status, body)``."""
        route = path.split("?", 1)[0]
        if route == "/healthz":
            ok = self._check(self._alive)
            return (200, "ok") if ok else (503, "unhealthy")
        if route == "/readyz":
            ok = not self.stopping and self._check(self._ready)
            return (200, "ready") if ok else (503, "not ready")
        if route == "/metrics":
            from .metrics import REGISTRY

            return 200, REGISTRY.render().rstrip("\n")
        return 404, "not found"

    @staticmethod
    def _check(check: Callable[[], bool]) -> bool:
        try:
            return bool(check())
        except Exception:  # a broken check means "not healthy", never a crashed probe
            return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5.0)
            parts = line[:_MAX_REQUEST_LINE].decode("latin-1").split()
            if len(parts) >= 2 and parts[0] in {"GET", "HEAD"}:
                code, body = self.status(parts[1])
            else:
                code, body = 400, "bad request"
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(
                code, "Service Unavailable"
            )
            payload = (body + "\n").encode()
            head = (
                f"HTTP/1.0 {code} {reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            ).encode()
            writer.write(head if parts and parts[0] == "HEAD" else head + payload)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def credentials_from_env(user: str | None, password: str | None) -> tuple[str | None, str | None]:
    """Fill a missing user/password from ``NATS_USER`` / ``NATS_PASSWORD``.

    Passwords belong in the environment (a Kubernetes Secret), not in argv where any
    process listing shows them; the flags exist for local use.
    """
    return (
        user or os.environ.get("NATS_USER") or None,
        password or os.environ.get("NATS_PASSWORD") or None,
    )


def connect_options(url: str, default_user: str) -> dict:
    """Keyword arguments for ``nats.connect`` of a service logging in to ``url``.

    Its own inbox prefix (see ``inbox_prefix_for``) and, when ``NATS_CA_FILE`` names a
    CA bundle (clusters whose NATS speaks TLS with a private CA), a TLS context that
    trusts it, so the system trust store used for provider calls stays untouched.
    """
    # A lost node is retried every half second, not nats-py's default 2 s: behind a
    # balancer, a retry that lands on the restarting node would otherwise stall turns.
    options: dict = {
        "inbox_prefix": inbox_prefix_for(url, default_user),
        "reconnect_time_wait": 0.5,
    }
    ca_file = os.environ.get("NATS_CA_FILE")
    if ca_file:
        import ssl

        options["tls"] = ssl.create_default_context(cafile=ca_file)
    return options


def inbox_prefix_for(url: str, default_user: str) -> str:
    """The inbox prefix a connection to ``url`` must use (``nats.connect(inbox_prefix=)``).

    That of the NATS user in the URL (``user:password@host``, see
    ``nats_url_with_credentials``), else ``default_user``'s: without a login (the
    embedded one-machine stack) there are no permissions, but the prefixes stay the same.
    """
    user = urlsplit(url.split(",")[0].strip()).username
    return inbox_prefix(user or default_user)


def nats_url_with_credentials(url: str, user: str | None, password: str | None) -> str:
    """Return ``url`` (one or comma-separated servers) with ``user:password@`` in each.

    nats-py reads credentials from the URL and sends them as they are (no percent
    decoding), so user and password must not contain ``@ : / ,`` or spaces.

    Raises:
        ValueError: a password without a user, or a character the URL cannot carry.
    """
    if not user:
        if password:
            raise ValueError("a NATS password needs a user (--nats-user / NATS_USER)")
        return url
    for what, value in (("user", user), ("password", password or "")):
        bad = sorted({c for c in value if c in "@:/,?# \t"})
        if bad:
            raise ValueError(f"NATS {what} contains characters a URL cannot carry: {bad}")
    userinfo = f"{user}:{password}" if password else user
    servers = []
    for server in url.split(","):
        parts = urlsplit(server.strip())
        host = parts.netloc.rsplit("@", 1)[-1]
        servers.append(urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, "", "")))
    return ",".join(servers)


class Service(Protocol):
    """What an entry point needs of a service: start, stop, and a readiness fact."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def connected(self) -> bool: ...


async def serve_until_signalled(service: Service, health_port: int | None = None) -> None:
    """Start ``service``, serve until SIGTERM/SIGINT, then stop it.

    With ``health_port`` the probe server comes up before ``start()``: liveness passes
    while streams are set up; readiness needs a finished start and a live connection,
    and turns false as soon as stopping begins.
    """
    import signal

    started = asyncio.Event()
    health = None
    if health_port is not None:
        health = await HealthServer(
            health_port, ready=lambda: started.is_set() and service.connected
        ).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        started.set()
        from .runtime import mark

        mark(f"{type(service).__name__}: started")
        await stop.wait()
    finally:
        if health is not None:
            health.stopping = True
        await service.stop()
        if health is not None:
            await health.stop()

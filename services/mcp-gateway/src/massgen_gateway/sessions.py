"""MCP client sessions (stdio processes, streamable-http connections) and circuit breakers.

The only module that imports the ``mcp`` SDK. A session lives in its own task, because
the SDK's transports are anyio task groups that must be entered and left by one task;
callers talk to it through ``list_tools`` / ``call_tool`` and stop it with ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from massgen_proto.config import McpServerConfig
from massgen_proto.json_types import JsonObject

if TYPE_CHECKING:  # the SDK is imported when a session starts (see ``McpSession._run``)
    from mcp import ClientSession
    from mcp.client._transport import TransportStreams  # the SDK's name; not re-exported
    from mcp.types import CallToolResult

__all__ = ["CircuitBreaker", "McpSession", "SessionError", "ToolInfo", "result_text"]

log = structlog.get_logger("massgen_gateway.sessions")


class SessionError(Exception):
    """A server could not be started, reached, or answered with a protocol error."""


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """One tool as a server lists it."""

    name: str
    description: str
    input_schema: JsonObject


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; lets one try through after ``cooldown``.

    Args:
        threshold: consecutive failures that open the circuit.
        cooldown: seconds the circuit stays open before a trial call.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.last_error = ""

    def allow(self) -> bool:
        """True when a call may go to the server now."""
        if self.opened_at is None:
            return True
        return self.clock() - self.opened_at >= self.cooldown

    def retry_in(self) -> float:
        """Seconds until a trial call is allowed (0 when closed)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - self.opened_at))

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self.failures >= self.threshold:
            self.opened_at = self.clock()


def result_text(result: CallToolResult) -> tuple[str, bool]:
    """(text for the model, is_error) of an MCP ``CallToolResult``."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{kind or 'unknown'} content omitted]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        import json

        parts.append(json.dumps(structured))
    return "\n".join(parts), bool(getattr(result, "is_error", False))


class McpSession:
    """One connected MCP server for one agent of one run.

    Args:
        config: the server's config entry.
        cwd: working folder of a stdio server (the agent's workspace) unless it sets one.
        errlog: path receiving a stdio server's stderr.
        connect_timeout: seconds to start and initialize.
    """

    def __init__(
        self, config: McpServerConfig, cwd: Path, errlog: Path | None, connect_timeout: float
    ) -> None:
        self.config = config
        self.cwd = cwd
        self.errlog = errlog
        self.connect_timeout = connect_timeout
        self._session: ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._error: BaseException | None = None
        self._tools: list[ToolInfo] | None = None
        self.broken = False
        """True once the connection failed; the owner replaces the session."""

    @property
    def name(self) -> str:
        return self.config.name

    async def start(self) -> None:
        """Start the server / connect, and initialize.

        Raises:
            SessionError: it did not come up within ``connect_timeout``.
        """
        logged = _size(self.errlog)
        self._task = asyncio.create_task(self._run(), name=f"mcp-{self.name}")
        ready = asyncio.create_task(self._ready.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, self._task},
                timeout=self.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
        if self._ready.is_set() and self._session is not None:
            return
        self.broken = True
        await self.close()
        # What a stdio server printed says why it stopped (npm offline, a missing module).
        said = _tail(self.errlog, logged)
        said = f"; it printed: {said}" if said else ""
        if self._error is not None:
            raise SessionError(f"{_describe(self._error)}{said}") from None
        raise SessionError(f"did not start within {self.connect_timeout:g} s{said}")

    async def _run(self) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(stack))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self._session = session
                self._ready.set()
                await self._closing.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - the SDK raises ExceptionGroups
            self._error = error
            self.broken = True
            log.warning("mcp_session_ended", server=self.name, error=_describe(error))
        finally:
            self._session = None

    def _transport(
        self, stack: contextlib.AsyncExitStack
    ) -> contextlib.AbstractAsyncContextManager[TransportStreams]:
        c = self.config
        if c.type == "stdio":
            from mcp.client.stdio import StdioServerParameters, stdio_client

            # Text mode, as the SDK's type says: only the file descriptor is handed on.
            if self.errlog:
                errlog = open(self.errlog, "a", encoding="utf-8")  # noqa: SIM115 - the stack closes it
            else:
                errlog = open("/dev/null", "w", encoding="utf-8")  # noqa: SIM115
            stack.callback(errlog.close)
            params = StdioServerParameters(
                command=c.command or "", args=list(c.args), env=dict(c.env) or None,
                cwd=c.cwd or str(self.cwd),
            )  # fmt: skip
            return stdio_client(params, errlog=errlog)
        import httpx2
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        timeout = c.timeout or 30.0
        client = create_mcp_http_client(
            headers=dict(c.headers) or None,
            timeout=httpx2.Timeout(timeout, read=max(timeout, 300.0)),
        )
        return streamable_http_client(c.url or "", http_client=client)

    async def list_tools(self) -> list[ToolInfo]:
        """The server's tools (listed once per session)."""
        if self._tools is None:
            session = self._live()
            tools: list[ToolInfo] = []
            cursor = None
            while True:
                from mcp import types

                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                try:
                    page = await session.list_tools(params=params)
                except Exception as error:
                    self.broken = True
                    raise SessionError(_describe(error)) from None
                tools += [
                    ToolInfo(t.name, t.description or "", dict(t.input_schema or {}))
                    for t in page.tools
                ]
                cursor = page.next_cursor
                if not cursor:
                    break
            self._tools = tools
        return self._tools

    async def call_tool(self, name: str, arguments: JsonObject, seconds: float) -> CallToolResult:
        """Call a tool; raises TimeoutError after ``seconds``, SessionError on failure."""
        session = self._live()
        try:
            async with asyncio.timeout(seconds):
                return await session.call_tool(name, arguments)
        except TimeoutError:
            raise
        except Exception as error:
            if self._task is None or self._task.done() or self._session is None:
                self.broken = True
            raise SessionError(_describe(error)) from None

    def _live(self) -> ClientSession:
        if self._session is None or self.broken:
            self.broken = True
            raise SessionError("the server connection is closed")
        return self._session

    async def close(self, grace: float = 5.0) -> None:
        """Close the session (stops a stdio server). Safe to call twice."""
        self._closing.set()
        task = self._task
        if task is None or task.done():
            return
        _, pending = await asyncio.wait({task}, timeout=grace)
        if pending:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _tail(path: Path | None, offset: int, limit: int = 400) -> str:
    """The last lines a server wrote to ``path`` after ``offset``, on one line."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as log:
            log.seek(max(offset, _size(path) - 4096))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = " | ".join(lines[-3:])
    return said if len(said) <= limit else "..." + said[-limit:]


def _describe(error: BaseException) -> str:
    """A one-line description, unwrapping exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error) or type(error).__name__
    if isinstance(error, FileNotFoundError | PermissionError):
        text = f"cannot start: {error.strerror}: {error.filename or ''}".rstrip(": ")
    return text

"""Run a question on a remote deployment through its HTTP API (``massgen --api URL``).

Speaks ``POST /v1/runs``, ``GET /v1/runs/{id}/events`` (server-sent events whose
``data:`` lines are run events) and ``POST /v1/runs/{id}/cancel``. Only httpx and
``massgen_proto``: no NATS, no service or model library.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from massgen_proto.events import RunEvent, RunEventAdapter, RunFinished
from massgen_proto.summary import RunSummary, apply_event

from .client import RunRefused
from .targets import TargetUnavailable

__all__ = ["ApiClient", "ApiError", "ApiUnreachable", "SseFrame", "parse_sse"]

EventHandler = Callable[[RunEvent], Awaitable[None] | None]


class ApiError(RunRefused):
    """The API answered with an error status (the message is the API's own)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {_reason(status)}: {message}")
        self.status = status
        self.message = message


class ApiUnreachable(TargetUnavailable):
    """No HTTP answer at all (wrong URL, server down)."""


def _reason(status: int) -> str:
    try:
        from http import HTTPStatus

        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _error_of(response: httpx.Response) -> ApiError:
    """The API's ``{"error": {"message": ...}, "detail": [...]}`` as an :class:`ApiError`."""
    message = response.text.strip() or "(no body)"
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        body = response.json()
        message = body["error"]["message"]
        details = [
            f"{d.get('path')}: {d.get('message')}" if d.get("path") else str(d.get("message"))
            for d in body.get("detail") or []
        ]
        if details and not all(d in message for d in details):
            message += " (" + "; ".join(details) + ")"
    return ApiError(response.status_code, message)


class SseFrame:
    """One server-sent event: ``id``, ``event`` and the joined ``data`` lines."""

    __slots__ = ("data", "event", "id")

    def __init__(self, id: str | None, event: str | None, data: str) -> None:  # noqa: A002
        self.id, self.event, self.data = id, event, data


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SseFrame]:
    """Frames of an SSE stream (comments and ``retry:`` skipped; a frame needs ``data``)."""
    event_id: str | None = None
    event: str | None = None
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield SseFrame(event_id, event, "\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id":
            event_id = value
    if data:
        yield SseFrame(event_id, event, "\n".join(data))


class ApiClient:
    """A MassGen-on-NATS HTTP API at ``url`` (``http://host:port``), with an optional token."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        read_timeout: float = 90.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.warnings: list[str] = []
        """The last created run's config warnings (keys accepted but not applied)."""
        # The events stream sends a keep-alive comment every 15 s, so a read that
        # waits longer than ``read_timeout`` means a dead connection: reconnect.
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, read=read_timeout),
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ApiUnreachable(f"cannot reach the API at {self.url}: {error!r}") from None
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    async def create_run(
        self, question: str, *, config: dict[str, Any] | None = None, team: str | None = None
    ) -> str:
        """``POST /v1/runs``; returns the run id.

        Raises:
            ApiError: the API refused (401 bad token, 404 unknown team, 422 bad config...).
            ApiUnreachable: no answer.
        """
        body: dict[str, Any] = {"question": question}
        if team is not None:
            body["team"] = team
        else:
            body["config"] = config
        response = await self._call("POST", "/v1/runs", json=body)
        created = response.json()
        warnings = created.get("warnings")
        self.warnings = [str(w) for w in warnings] if isinstance(warnings, list) else []
        return str(created["id"])

    async def run_files(self, run_id: str) -> list[dict[str, Any]]:
        """``GET /v1/runs/{id}/files``: the run's media files (path, mime, size, url)."""
        files = (await self._call("GET", f"/v1/runs/{run_id}/files")).json().get("files")
        return [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []

    async def file(self, url: str) -> bytes:
        """The bytes at a file ``url`` of :meth:`run_files`."""
        return (await self._call("GET", url)).content

    async def cancel_run(self, run_id: str) -> None:
        """``POST /v1/runs/{id}/cancel`` (a finished run is left as it is)."""
        await self._call("POST", f"/v1/runs/{run_id}/cancel")

    async def events(self, run_id: str, retries: int = 5) -> AsyncIterator[RunEvent]:
        """The run's events from the start until ``run_finished``.

        A dropped connection is resumed with ``Last-Event-ID`` (up to ``retries`` times
        in a row), so no event is lost or repeated.
        """
        last_id: str | None = None
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                async with self._http.stream(
                    "GET", f"/v1/runs/{run_id}/events", headers=headers
                ) as response:
                    if response.status_code == 204:  # nothing after Last-Event-ID: over
                        return
                    if response.status_code >= 400:
                        await response.aread()
                        raise _error_of(response)
                    async for frame in parse_sse(response.aiter_lines()):
                        event = RunEventAdapter.validate_json(frame.data)
                        if frame.id is not None:
                            last_id = frame.id
                        failures = 0
                        yield event
                        if isinstance(event, RunFinished):
                            return
            except httpx.TransportError as error:
                failures += 1
                if failures > retries:
                    raise ApiUnreachable(
                        f"lost the event stream of run {run_id} at {self.url}: {error!r}"
                    ) from None
                await asyncio.sleep(min(0.2 * 2**failures, 3.0))
                continue
            # The stream ended without run_finished (a restarted API replica): resume.
            failures += 1
            if failures > retries:
                raise ApiUnreachable(f"the event stream of run {run_id} ended early")
            await asyncio.sleep(min(0.2 * 2**failures, 3.0))

    async def follow(
        self, run_id: str, on_event: EventHandler, *, cancel: asyncio.Event | None = None
    ) -> RunSummary:
        """Hand every event of a created run to ``on_event``; return the final summary.

        When ``cancel`` is set the run is cancelled through the API; this still returns
        once the run's last event arrives, with everything accepted so far.
        """
        summary = RunSummary(run_id=run_id)
        cancel_task: asyncio.Task | None = None

        async def cancel_when_asked() -> None:
            assert cancel is not None
            await cancel.wait()
            await self.cancel_run(run_id)

        if cancel is not None:
            cancel_task = asyncio.ensure_future(cancel_when_asked())
        try:
            async for event in self.events(run_id):
                apply_event(summary, event)
                result = on_event(event)
                if asyncio.iscoroutine(result):
                    await result
                if cancel_task is not None and cancel_task.done() and cancel_task.exception():
                    raise cancel_task.exception()  # type: ignore[misc]
            return summary
        finally:
            if cancel_task is not None and not cancel_task.done():
                cancel_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cancel_task

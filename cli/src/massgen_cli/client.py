"""Run a question on a MassGen-on-NATS deployment and follow its events.

Used by the embedded launcher and by ``massgen`` against a warm or remote stack: it
only speaks the subjects and messages of ``massgen_proto``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from massgen_kit.runtime import mark
from massgen_proto import subjects
from massgen_proto.events import RunEvent, RunFinished
from massgen_proto.ids import new_run_id
from massgen_proto.messages import (
    CancelRun,
    ChatMessage,
    CreateRun,
    ErrorReply,
    OrchestratorReplyAdapter,
)
from massgen_proto.summary import RunSummary, apply_event
from massgen_proto.trust import StreamGate
from nats.aio.client import Client
from nats.aio.msg import Msg

__all__ = ["RunRefused", "follow_run"]

EventHandler = Callable[[RunEvent], Awaitable[None] | None]


class RunRefused(RuntimeError):
    """The orchestrator refused to create the run (bad config, bad request)."""


async def _request(nc: Client, subject: str, payload: bytes, timeout: float) -> Any:
    reply = await nc.request(subject, payload, timeout=timeout)
    return OrchestratorReplyAdapter.validate_json(reply.data)


async def _create_run(nc: Client, request: CreateRun, timeout: float) -> None:
    """Send ``request``; raise :class:`RunRefused` when the orchestrator says no."""
    mark("cli: create run sent")
    reply = await _request(nc, subjects.SUBMIT_CREATE, request.model_dump_json().encode(), timeout)
    mark("cli: run created")
    if isinstance(reply, ErrorReply):
        raise RunRefused(reply.error)


async def _cancel_run(nc: Client, run_id: str, timeout: float) -> None:
    request = CancelRun(run_id=run_id).model_dump_json().encode()
    await nc.request(subjects.SUBMIT_CANCEL, request, timeout=timeout)


async def _next_event(
    queue: asyncio.Queue[RunEvent],
    cancel: asyncio.Event | None,
    send_cancel: Callable[[], Awaitable[None]],
) -> tuple[RunEvent | None, bool]:
    """The next event off ``queue`` (None if none came), and whether ``cancel`` was set
    meanwhile (then ``send_cancel`` has been awaited)."""
    get = asyncio.ensure_future(queue.get())
    waiters: set[asyncio.Future[Any]] = {get}
    cancel_wait = None
    if cancel is not None:
        cancel_wait = asyncio.ensure_future(cancel.wait())
        waiters.add(cancel_wait)
    done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    cancelled = cancel_wait is not None and cancel_wait in done
    if cancel_wait is not None and not cancelled:
        cancel_wait.cancel()
    if cancelled:
        await send_cancel()
    # Not ``get not in done``: while the cancel request awaited its reply, ``get`` may
    # have taken an event (often run_finished) off the queue; dropping it would leave
    # the caller waiting forever.
    if not get.done():
        get.cancel()
        return None, cancelled
    return get.result(), cancelled


async def follow_run(
    nc: Client,
    question: str,
    config: dict[str, Any],
    on_event: EventHandler,
    *,
    history: list[ChatMessage] | None = None,
    run_id: str | None = None,
    cancel: asyncio.Event | None = None,
    request_timeout: float = 10.0,
    previous_run_id: str | None = None,
) -> RunSummary:
    """Create a run, hand every event to ``on_event`` in order, return the final summary.

    Subscribes to the run's events before creating it, so nothing is missed. When
    ``cancel`` is set the run is cancelled; the function still returns once the
    run's last event arrives, with everything accepted so far. ``previous_run_id``
    (a session's previous turn) gives the agents that run's final workspace.

    Raises:
        RunRefused: the orchestrator rejected the request; the message says why.
    """
    run_id = run_id or new_run_id()
    queue: asyncio.Queue[RunEvent] = asyncio.Queue()

    gate = StreamGate()

    async def collect(msg: Msg) -> None:
        # Answers, votes and the outcome count only from the orchestrator's subject; a
        # worker's chunks only with the tag of a turn the orchestrator gave it.
        event = gate.admit(msg.subject, msg.data)
        if event is not None:
            queue.put_nowait(event)

    sub = await nc.subscribe(subjects.events_filter(run_id), cb=collect)
    try:
        request = CreateRun(
            run_id=run_id, question=question, config=config, history=history or [],
            previous_run_id=previous_run_id,
        )  # fmt: skip
        await _create_run(nc, request, request_timeout)
        summary = RunSummary(run_id=run_id)
        send_cancel = functools.partial(_cancel_run, nc, run_id, request_timeout)
        watch = cancel
        while True:
            event, cancelled = await _next_event(queue, watch, send_cancel)
            if cancelled:
                watch = None  # the cancel request goes once
            if event is None:
                continue
            apply_event(summary, event)
            result = on_event(event)
            if asyncio.iscoroutine(result):
                await result
            if isinstance(event, RunFinished):
                return summary
    finally:
        await sub.unsubscribe()

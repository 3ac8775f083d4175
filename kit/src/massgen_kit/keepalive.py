"""Request/reply with a responder that sends keep-alives while it works (the gateway).

A plain NATS request cannot tell a slow responder from a dead one: it waits its whole
timeout. The gateway sends an empty ``KEEPALIVE_HEADER: working`` message every
``KEEPALIVE_SECONDS`` while it works on a request, so a caller can give up after a few
silent intervals (its replica died) and still wait long for real work.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from massgen_proto.tools import KEEPALIVE_HEADER

__all__ = ["ResponderSilent", "request_with_keepalive"]


class ResponderSilent(Exception):
    """The responder stopped sending keep-alives for a request: its replica is gone."""


async def request_with_keepalive(
    nc: Any,
    subject: str,
    payload: bytes,
    timeout: float,
    silence: float = 7.0,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Send a request (with ``headers``, e.g. a trace context) and return the answer's data.

    Raises:
        nats.errors.NoRespondersError: nobody is subscribed to ``subject``.
        ResponderSilent: no word for ``silence`` seconds.
        TimeoutError: no answer within ``timeout``.
    """
    import nats.errors

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    sub = await nc.subscribe(nc.new_inbox())
    try:
        await nc.publish(subject, payload, reply=sub.subject, headers=headers)
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no answer on {subject} in {timeout:g} s")
            try:
                msg = await sub.next_msg(timeout=min(left, silence))
            except nats.errors.TimeoutError:
                if deadline - loop.time() <= 0:
                    continue
                raise ResponderSilent(f"no word on {subject} for {silence:g} s") from None
            headers = msg.headers or {}
            if headers.get(KEEPALIVE_HEADER) == "working":
                continue
            if headers.get("Status") == "503":
                raise nats.errors.NoRespondersError
            return msg.data
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

"""Create the JetStream streams, consumers and KV bucket every service relies on.

Idempotent: each service calls what it needs at start-up, so any start order works
and a fresh cluster needs no setup job. Imports nats-py lazily (only services need it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from massgen_proto.subjects import (
    EVENTS_STREAM,
    EVENTS_WILDCARD,
    RUNS_BUCKET,
    TURNS_STREAM,
    TURNS_WILDCARD,
    provider_consumer,
    turn_subject,
)

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

__all__ = [
    "NO_MESSAGE",
    "OrderedFollower",
    "StreamSettings",
    "close_connection",
    "ensure_bucket",
    "ensure_events_stream",
    "ensure_provider_consumer",
    "ensure_runs_bucket",
    "ensure_turns_stream",
    "bucket_keys",
]


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive, not {value!r}")
    return number


GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Durability and size settings; prod clusters use replicas=3.

    Every stream and bucket is bounded, so a full JetStream store can never stop turns:
    the events stream drops its oldest messages at ``events_max_bytes`` (readers replay
    recent runs; old chunks are what goes), buckets drop keys older than
    ``bucket_max_age_seconds``. The limits come from the environment
    (``MASSGEN_EVENTS_MAX_BYTES``, ``MASSGEN_EVENTS_MAX_AGE_SECONDS``,
    ``MASSGEN_BUCKET_MAX_BYTES``, ``MASSGEN_BUCKET_MAX_AGE_SECONDS``,
    ``MASSGEN_TURNS_MAX_BYTES``) where the deployment sizes them from its store.
    """

    replicas: int = 1
    memory: bool = False
    """Keep streams in memory (tests and benchmarks); file storage otherwise."""
    events_max_age_seconds: float = field(
        default_factory=lambda: _env_number("MASSGEN_EVENTS_MAX_AGE_SECONDS", 7 * 24 * 3600)
    )
    events_max_bytes: int = field(
        default_factory=lambda: int(_env_number("MASSGEN_EVENTS_MAX_BYTES", 2 * GIB))
    )
    turns_max_bytes: int = field(
        default_factory=lambda: int(_env_number("MASSGEN_TURNS_MAX_BYTES", GIB // 2))
    )
    """Queued turn requests (consumed ones are removed): new ones are refused past it."""
    bucket_max_bytes: int = field(
        default_factory=lambda: int(_env_number("MASSGEN_BUCKET_MAX_BYTES", GIB // 2))
    )
    bucket_max_age_seconds: float = field(
        default_factory=lambda: _env_number("MASSGEN_BUCKET_MAX_AGE_SECONDS", 30 * 24 * 3600)
    )
    """Longer than any run may last (a key older than this is dropped, open or not)."""


async def _ensure_stream(js: JetStreamContext, config) -> None:
    from nats.js.errors import BadRequestError, NotFoundError

    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except BadRequestError as error:
            # Another service created it between our look-up and our add.
            if "already in use" not in str(error):
                raise


async def ensure_turns_stream(js: JetStreamContext, settings: StreamSettings) -> None:
    """The work-queue stream of turn requests."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    await _ensure_stream(
        js,
        StreamConfig(
            name=TURNS_STREAM,
            subjects=[TURNS_WILDCARD],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.MEMORY if settings.memory else StorageType.FILE,
            num_replicas=settings.replicas,
            max_bytes=settings.turns_max_bytes,
            discard=DiscardPolicy.NEW,  # never drop a queued turn: refuse new ones
        ),
    )


async def ensure_events_stream(js: JetStreamContext, settings: StreamSettings) -> None:
    """The stream holding every run's events."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    await _ensure_stream(
        js,
        StreamConfig(
            name=EVENTS_STREAM,
            subjects=[EVENTS_WILDCARD],
            retention=RetentionPolicy.LIMITS,
            max_age=settings.events_max_age_seconds,
            max_bytes=settings.events_max_bytes,
            discard=DiscardPolicy.OLD,
            storage=StorageType.MEMORY if settings.memory else StorageType.FILE,
            num_replicas=settings.replicas,
        ),
    )


async def ensure_runs_bucket(js: JetStreamContext, settings: StreamSettings) -> KeyValue:
    """The KV bucket of run states."""
    return await ensure_bucket(js, RUNS_BUCKET, settings)


async def ensure_bucket(
    js: JetStreamContext, name: str, settings: StreamSettings, max_age: float | None = None
) -> KeyValue:
    """A KV bucket (history 1, bounded by ``settings``; keys older than ``max_age``
    seconds, default ``settings.bucket_max_age_seconds``, dropped), created if missing."""
    from nats.js.api import KeyValueConfig, StorageType
    from nats.js.errors import BucketNotFoundError

    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=name,
                history=1,
                storage=StorageType.MEMORY if settings.memory else StorageType.FILE,
                replicas=settings.replicas,
                max_bytes=settings.bucket_max_bytes,
                ttl=max_age or settings.bucket_max_age_seconds,
            )
        )
    except Exception:  # noqa: BLE001 - created by another service in between
        return await js.key_value(name)


NO_MESSAGE = 10037
"""JetStream's error code for "no message found". A 404 with another code (e.g. 10059,
"stream not found", from a node still joining the cluster) says nothing about the
key: whoever reads a run must retry it, not conclude the run does not exist."""


async def bucket_keys(js: JetStreamContext, bucket: str) -> list[str]:
    """Every key the bucket holds a message for, deleted ones included (their marker
    stays until purged; a ``get`` tells them apart).

    Read from the stream's own subject index in one request: nats-py's ``KeyValue.keys``
    walks a watch and, under load, can end before the last key arrives.
    """
    prefix = f"$KV.{bucket}."
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
    return [subject[len(prefix) :] for subject in info.state.subjects or {}]


async def ensure_provider_consumer(
    js: JetStreamContext, provider: str, ack_wait: float, max_deliver: int = 5
) -> str:
    """The durable pull consumer through which ``provider``'s workers take turns.

    Returns:
        The consumer (durable) name.
    """
    from nats.js.api import AckPolicy, ConsumerConfig

    durable = provider_consumer(provider)
    await js.add_consumer(
        TURNS_STREAM,
        ConsumerConfig(
            durable_name=durable,
            filter_subject=turn_subject(provider),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            max_ack_pending=10_000,
        ),
    )
    return durable


async def close_connection(nc, timeout: float = 5.0) -> None:
    """Drain a NATS connection within ``timeout``; close it outright when that fails.

    A service stopping while its server is gone must still exit: draining a
    disconnected client (which keeps reconnecting) would wait forever.
    """
    import asyncio

    if nc.is_connected:
        try:
            await asyncio.wait_for(nc.drain(), timeout)
            return
        except Exception:  # noqa: BLE001 - any failure to drain: close instead
            pass
    if not nc.is_closed:
        await nc.close()


class OrderedFollower:
    """Read a stream's messages in order through an ordered consumer that cannot go
    silent.

    An ordered consumer lives in memory on one NATS node. When that node dies, nats-py
    re-creates it only after two missed heartbeats, and gives up if that one attempt
    fails: the reader then waits forever while messages pile up. Here, whenever no
    message came within a read's timeout, the consumer is checked; if it is gone, or
    holds messages it does not deliver, a new one starts right after the last message
    read.

    Args:
        js: the JetStream context.
        stream: the stream's name.
        subject: the filter subject.
        start: where to begin (a ``nats.js.api.ConsumerConfig``: deliver policy, start
            sequence, inactive threshold); resumes use ``BY_START_SEQUENCE``.
    """

    def __init__(self, js: JetStreamContext, stream: str, subject: str, start: Any) -> None:
        self._js, self._stream, self._subject, self._config = js, stream, subject, start
        self._sub: Any = None
        # Messages come through a callback (nats-py answers the consumer's flow control
        # as it delivers to one; read with next_msg, it answers up to 250 ms late).
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.last = 0
        """Stream sequence of the last message read (0: none yet)."""
        self._checked_at_last = -1
        self.resumes = 0

    async def start(self) -> OrderedFollower:
        self._sub = await self._js.subscribe(
            self._subject, stream=self._stream, ordered_consumer=True, config=self._config,
            cb=self._queue.put,
        )  # fmt: skip
        return self

    async def next(self, timeout: float) -> Any | None:
        """The next message, or None when none came within ``timeout`` seconds."""
        while True:
            try:
                msg = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                await self._check()
                return None
            seq = msg.metadata.sequence.stream
            if seq > self.last:  # not one a replaced consumer delivered too
                self.last = seq
                return msg

    async def _check(self) -> None:
        try:
            info = await self._sub.consumer_info()
        except Exception:  # noqa: BLE001 - gone, or its node unreachable: resume
            stalled = True
        else:
            # Pending messages and nothing read through a whole timeout, twice running.
            stalled = info.num_pending > 0 and self._checked_at_last == self.last
        self._checked_at_last = self.last
        if stalled:
            await self._resume()

    async def _resume(self) -> None:
        from dataclasses import replace

        from nats.js.api import DeliverPolicy

        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._sub.unsubscribe(), 2.0)
        if self.last:
            self._config = replace(
                self._config, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self.last + 1, deliver_subject=None,
            )  # fmt: skip
        else:
            self._config = replace(self._config, deliver_subject=None)
        self.resumes += 1
        import structlog

        structlog.get_logger("jetstream").warning(
            "consumer.resumed", stream=self._stream, subject=self._subject, after=self.last
        )
        try:
            await self.start()
        except Exception:  # noqa: BLE001 - NATS still failing: the next read retries
            self._sub = _Broken()
        self._checked_at_last = -1

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._sub.unsubscribe(), 2.0)


class _Broken:
    """Stands in for a subscription that could not be made: checks fail (so the next
    idle read tries again)."""

    async def consumer_info(self) -> Any:
        raise ConnectionError("no subscription")

    async def unsubscribe(self) -> None:
        return None

"""Create the JetStream streams, consumers and KV bucket every service relies on.

Idempotent: each service calls what it needs at start-up, so any start order works
and a fresh cluster needs no setup job. Imports nats-py lazily (only services need it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
    "StreamSettings",
    "close_connection",
    "ensure_bucket",
    "ensure_events_stream",
    "ensure_provider_consumer",
    "ensure_runs_bucket",
    "ensure_turns_stream",
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

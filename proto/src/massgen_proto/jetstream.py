"""Create the JetStream streams, consumers and KV bucket every service relies on.

Idempotent: each service calls what it needs at start-up, so any start order works
and a fresh cluster needs no setup job. Imports nats-py lazily (only services need it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .subjects import (
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
    "ensure_events_stream",
    "ensure_provider_consumer",
    "ensure_runs_bucket",
    "ensure_turns_stream",
]


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Durability settings; prod clusters use replicas=3."""

    replicas: int = 1
    events_max_age_seconds: float = 7 * 24 * 3600
    memory: bool = False
    """Keep streams in memory (tests and benchmarks); file storage otherwise."""


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
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig

    await _ensure_stream(
        js,
        StreamConfig(
            name=TURNS_STREAM,
            subjects=[TURNS_WILDCARD],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.MEMORY if settings.memory else StorageType.FILE,
            num_replicas=settings.replicas,
        ),
    )


async def ensure_events_stream(js: JetStreamContext, settings: StreamSettings) -> None:
    """The stream holding every run's events."""
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig

    await _ensure_stream(
        js,
        StreamConfig(
            name=EVENTS_STREAM,
            subjects=[EVENTS_WILDCARD],
            retention=RetentionPolicy.LIMITS,
            max_age=settings.events_max_age_seconds,
            storage=StorageType.MEMORY if settings.memory else StorageType.FILE,
            num_replicas=settings.replicas,
        ),
    )


async def ensure_runs_bucket(js: JetStreamContext, settings: StreamSettings) -> KeyValue:
    """The KV bucket of run states."""
    from nats.js.api import KeyValueConfig, StorageType
    from nats.js.errors import BucketNotFoundError

    try:
        return await js.key_value(RUNS_BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=RUNS_BUCKET,
                history=1,
                storage=StorageType.MEMORY if settings.memory else StorageType.FILE,
                replicas=settings.replicas,
            )
        )


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

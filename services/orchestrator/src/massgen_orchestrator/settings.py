"""Orchestrator settings, validated at start-up."""

from __future__ import annotations

import os
import socket

from massgen_kit.jetstream import StreamSettings
from pydantic import BaseModel, Field

__all__ = ["OrchestratorSettings"]


class OrchestratorSettings(BaseModel):
    """How one orchestrator replica runs."""

    nats_url: str = Field(
        default_factory=lambda: os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    )
    replica: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    """Name used in logs and the NATS connection."""
    stream_replicas: int = Field(default=1, ge=1, le=5)
    memory_streams: bool = False
    """Keep streams in memory (tests, benchmarks); file storage otherwise."""
    persist_retries: int = Field(default=12, ge=1)
    """Attempts at a compare-and-set write of a run before giving up on a message (the
    sender is told to retry: ``internal``). Replicas racing on one run back off a few
    random milliseconds between attempts, so one of them wins each round."""
    takeover_grace_seconds: float = Field(default=1.0, gt=0)
    """How long after a run's due time (or an unexecuted outbox) the replicas that did
    not write its state step in for the one that did."""

    def stream_settings(self) -> StreamSettings:
        """The JetStream durability settings these values stand for."""
        return StreamSettings(replicas=self.stream_replicas, memory=self.memory_streams)

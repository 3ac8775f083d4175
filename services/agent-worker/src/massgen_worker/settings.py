"""Worker settings: validated when built, overridable from ``MASSGEN_WORKER_*`` variables."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import replace

from massgen_kit.jetstream import StreamSettings
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ENV_PREFIX", "WorkerSettings", "default_worker_name"]

ENV_PREFIX = "MASSGEN_WORKER_"


def default_worker_name() -> str:
    """``<host>-<pid>``: unique enough to tell workers apart in logs and TurnStarted."""
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(BaseModel):
    """How one worker process pulls, runs and reports turns."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    concurrency: int = Field(default=8, ge=1)
    """Turns run at once by this process (across its providers)."""
    ack_wait: float = Field(default=3.0, gt=0)
    """Seconds JetStream waits for an ack before redelivering; running turns report
    progress every ack_wait/3, so only a dead (or frozen) worker's turns are redelivered,
    and they are back in the queue about ``ack_wait`` after it died. Short, because that
    wait is the whole delay a killed worker adds to a run; a turn delivered twice is
    harmless (the orchestrator takes one report per turn)."""
    max_deliver: int = Field(default=5, ge=1)
    """Deliveries of one turn request before JetStream gives up on it."""
    provider_retries: int = Field(default=3, ge=0)
    """Retries of a retryable provider error within one model call."""
    retry_base_delay: float = Field(default=0.5, ge=0)
    """First backoff delay in seconds; doubled per retry, with jitter."""
    retry_max_delay: float = Field(default=8.0, ge=0)
    """Cap on one backoff delay."""
    max_tool_rounds: int = Field(default=4, ge=1)
    """Deprecated and unused. Still accepted (``MASSGEN_WORKER_MAX_TOOL_ROUNDS``) so
    existing deployments start; the tool loop is now bounded per turn by the turn
    request's ``max_tool_calls`` (config ``orchestrator.max_tool_calls_per_turn``)."""
    max_tool_result_chars: int = Field(default=20_000, ge=1)
    """Characters of one tool result the model reads (and the tool-result event
    carries); the rest is cut and a note asks the model for a narrower call."""
    graceful_timeout: float = Field(default=10.0, ge=0)
    """On stop, seconds running turns get to finish before they are cancelled."""
    request_timeout: float = Field(default=3.0, gt=0)
    """Seconds to wait for the orchestrator's reply to one report. Short on purpose: a
    report sent to a replica that just died is lost, and the retry (idempotent) reaches
    a live one."""
    request_retries: int = Field(default=6, ge=0)
    """Retries of a report the orchestrator did not answer in time, or could not commit
    ("internal": a conflict storm, a NATS failover); with the backoff about 20 s in all."""
    fetch_timeout: float = Field(default=1.0, gt=0)
    """Long-poll length of one pull; bounds how fast stop() ends the pull loops."""
    use_gateway: bool = True
    """Ask the mcp-gateway for the agent's tools at each turn start (no gateway: none)."""
    tool_list_timeout: float = Field(default=45.0, gt=0)
    """Seconds to wait for the gateway's tool list (it may be starting MCP servers)."""
    tool_call_timeout: float = Field(default=120.0, gt=0)
    """Seconds one tool call may take (a command the agent runs, its tests...); the
    gateway answers with a timeout error then."""
    gateway_silence: float = Field(default=7.0, gt=0)
    """Seconds without a word from the gateway (it sends keep-alives every 2 s while it
    works) after which a request is taken as lost with its replica: a tool list is asked
    again, a tool call answered with an error the model can act on."""
    chunk_flush_seconds: float = Field(default=0.05, ge=0)
    """Streamed text is published in batches: a piece waits at most this long for the
    ones after it (the first piece of each response goes at once; 0: every piece is
    its own event)."""
    chunk_flush_chars: int = Field(default=256, ge=1)
    """A batch of streamed text goes out as soon as it holds this many characters."""
    rate_limits: dict[str, float] = Field(default_factory=dict)
    """Max turns started per second, per provider (absent: unlimited)."""
    stream_settings: StreamSettings = Field(default_factory=StreamSettings)
    worker_name: str = Field(default_factory=default_worker_name)

    @field_validator("rate_limits")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        for provider, rate in value.items():
            if rate <= 0:
                raise ValueError(f"rate limit for provider {provider!r} must be > 0, got {rate}")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> WorkerSettings:
        """Build settings from ``MASSGEN_WORKER_<FIELD>`` variables, then ``overrides``.

        ``rate_limits`` is JSON (``{"openai": 2}``); ``stream_settings`` fields are
        ``MASSGEN_WORKER_STREAM_REPLICAS`` / ``..._STREAM_MEMORY``.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None or name == "stream_settings":
                continue
            values[name] = json.loads(raw) if name == "rate_limits" else raw
        replicas = env.get(ENV_PREFIX + "STREAM_REPLICAS")
        memory = env.get(ENV_PREFIX + "STREAM_MEMORY")
        if replicas is not None or memory is not None:
            stream = StreamSettings()
            if replicas is not None:
                stream = replace(stream, replicas=int(replicas))
            if memory is not None:
                stream = replace(stream, memory=memory.lower() in {"1", "true", "yes"})
            values["stream_settings"] = stream
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

"""Every NATS subject, stream, consumer and bucket name, built in one place.

Services never spell a subject themselves: a change of naming is a change here.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "GATEWAY_CHECK",
    "GATEWAY_CLOSE",
    "GATEWAY_FILES",
    "GATEWAY_RUN_FILES",
    "GATEWAY_QUEUE",
    "GATEWAY_TOOLS_CALL",
    "GATEWAY_TOOLS_LIST",
    "API_RUNS_BUCKET",
    "USAGE_BUCKET",
    "SESSIONS_BUCKET",
    "CONTROL_WILDCARD",
    "EVENTS_STREAM",
    "EVENTS_WILDCARD",
    "ORCHESTRATOR_EXECUTED",
    "ORCHESTRATOR_QUEUE",
    "RUNS_BUCKET",
    "SUBMIT_CREATE",
    "SUBMIT_CANCEL",
    "SUBMIT_REPORT",
    "REPORT_TO_REPLICA",
    "TURNS_STREAM",
    "TURNS_WILDCARD",
    "TURN_UNDELIVERED",
    "control_subject",
    "EVENT_SOURCES",
    "event_source",
    "events_filter",
    "events_subject",
    "inbox_prefix",
    "replica_token",
    "report_subject",
    "inbox_wildcard",
    "provider_consumer",
    "turn_subject",
    "validate_token",
]

PREFIX = "massgen"

TURNS_STREAM = "MASSGEN_TURNS"
"""Work-queue stream of turn requests; one durable consumer per provider."""
TURNS_WILDCARD = f"{PREFIX}.turns.>"
TURN_UNDELIVERED = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{TURNS_STREAM}.*"
"""JetStream's advisory that it gave up on a turn request (``max_deliver`` deliveries,
none acked: each worker that took it died or stalled); the orchestrator fails the turn."""

EVENTS_STREAM = "MASSGEN_EVENTS"
"""Limits stream holding every run event, replayable per run by subject filter."""
EVENTS_WILDCARD = f"{PREFIX}.events.>"

RUNS_BUCKET = "massgen_runs"
"""KV bucket: run id -> serialized run state, written after every transition."""

SUBMIT_CREATE = f"{PREFIX}.orchestrator.create"
"""Request/reply: create a run (CreateRun -> RunAccepted | ErrorReply)."""
SUBMIT_REPORT = f"{PREFIX}.orchestrator.report"
"""Request/reply: a worker's report on a turn (WorkerReport -> Verdict), to any replica."""
REPORT_TO_REPLICA = f"{SUBMIT_REPORT}.*"
"""``report_subject(replica)`` for every replica (permissions)."""
SUBMIT_CANCEL = f"{PREFIX}.orchestrator.cancel"
"""Request/reply: cancel a run (CancelRun -> RunAccepted | ErrorReply)."""
ORCHESTRATOR_QUEUE = "orchestrator"
"""Queue group shared by orchestrator replicas."""
ORCHESTRATOR_EXECUTED = f"{PREFIX}.orchestrator.executed"
"""Core NATS, between orchestrator replicas: "<run_id> <seq>" once a committed
transition's commands are all executed (so other replicas need not replay them)."""

CONTROL_WILDCARD = f"{PREFIX}.control.>"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def validate_token(value: str, what: str) -> str:
    """Return ``value`` if it is safe as one subject token, else raise ValueError naming
    ``what``."""
    if not _TOKEN.match(value):
        raise ValueError(f"{what} {value!r} must match [A-Za-z0-9_-]+ to be used in NATS subjects")
    return value


def report_subject(replica: str = "") -> str:
    """Where a worker sends a turn's reports: the replica that published the turn, which
    holds the run's state (``TurnRequest.orchestrator``), or any replica (no name).

    Raises:
        ValueError: ``replica`` is not one subject token.
    """
    if not replica:
        return SUBMIT_REPORT
    return f"{SUBMIT_REPORT}.{validate_token(replica, 'orchestrator replica')}"


def replica_token(name: str) -> str:
    """A replica's name made safe as one subject token (host names may hold dots)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "orchestrator"


def inbox_prefix(user: str) -> str:
    """Inbox prefix of NATS user ``user`` (``nats.connect(inbox_prefix=...)``).

    Replies to the user's requests and deliveries of its push consumers (KV watches,
    ordered consumers) go to subjects under it; only that user may subscribe there, so
    no service can overhear replies meant for another (nats-py's default ``_INBOX`` is
    granted to nobody). Not ``_INBOX.<user>``: a grant of ``_INBOX_<user>.>`` can never
    overlap another user's, whatever the user names.
    """
    return f"_INBOX_{validate_token(user, 'NATS user')}"


def inbox_wildcard(user: str) -> str:
    """Every subject under ``user``'s inbox prefix (its subscribe permission)."""
    return f"{inbox_prefix(user)}.>"


def turn_subject(provider: str) -> str:
    """Subject on which turn requests for ``provider`` are published."""
    return f"{PREFIX}.turns.{validate_token(provider, 'provider')}"


def provider_consumer(provider: str) -> str:
    """Durable consumer name through which workers pull ``provider``'s turns."""
    return f"worker-{validate_token(provider, 'provider')}"


EventSource = Literal["run", "stream", "tools"]
EVENT_SOURCES: tuple[EventSource, ...] = ("run", "stream", "tools")
"""Who publishes on a run's event subjects, each on its own (NATS permissions hold each
service to its own): ``run`` the orchestrator (answers, votes, winners, status),
``stream`` the workers (streamed model output, token usage), ``tools`` the gateway."""


def events_subject(run_id: str, source: EventSource) -> str:
    """Subject on which ``source`` publishes run ``run_id``'s events."""
    if source not in EVENT_SOURCES:
        raise ValueError(f"unknown event source {source!r}")
    return f"{PREFIX}.events.{validate_token(run_id, 'run id')}.{source}"


def events_filter(run_id: str) -> str:
    """Every event subject of run ``run_id`` (to subscribe or replay, in stream order)."""
    return f"{PREFIX}.events.{validate_token(run_id, 'run id')}.*"


def event_source(subject: str) -> str | None:
    """The publisher role an event subject belongs to, or None if it is not one."""
    head, _, source = subject.rpartition(".")
    if head.startswith(f"{PREFIX}.events.") and source in EVENT_SOURCES:
        return source
    return None


def control_subject(run_id: str) -> str:
    """Core-NATS subject on which the orchestrator tells workers to cancel turns of a run."""
    return f"{PREFIX}.control.{validate_token(run_id, 'run id')}"


SESSIONS_BUCKET = "massgen_sessions"
"""KV bucket: session id -> the API's multi-turn session (tenant, team/config, turns)."""

API_RUNS_BUCKET = "massgen_api_runs"
"""KV bucket: run id -> the API's index record of a run (tenant, team, status, created_at)."""
USAGE_BUCKET = "massgen_usage"
"""KV bucket of the API: what each finished run used, keyed by tenant and UTC day
(``<tenant key>.<YYYYMMDD>.<run id>``), for the per-tenant daily limits."""


GATEWAY_TOOLS_LIST = f"{PREFIX}.gateway.tools.list"
"""Request/reply: an agent's tools (ToolListRequest -> ToolList | ErrorReply)."""
GATEWAY_TOOLS_CALL = f"{PREFIX}.gateway.tools.call"
"""Request/reply: call one tool (ToolCallRequest -> ToolResult | ErrorReply)."""
GATEWAY_CHECK = f"{PREFIX}.gateway.check"
"""Request/reply, workers: run an answer's code against the task's examples in the
sandbox (CheckRequest -> CheckResult | ErrorReply)."""
GATEWAY_CLOSE = f"{PREFIX}.gateway.close"
"""Request/reply: close a run's MCP sessions (CloseRunTools -> RunAccepted)."""
GATEWAY_QUEUE = "mcp-gateway"
"""Queue group shared by gateway replicas."""
GATEWAY_FILES = f"{PREFIX}.gateway.files"
"""Request/reply, workers: read or write a chunk of an agent's file (``media``)."""
GATEWAY_RUN_FILES = f"{PREFIX}.gateway.runfiles"
"""Request/reply, the API: list a run's media files or read a chunk of one (``media``)."""

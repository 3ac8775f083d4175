"""NATS users and their subject permissions: the one source of truth.

Both the Kubernetes manifests (``base/nats/auth.conf``, written by ``generate.py``) and
the local cluster stand-in (``scripts/cluster.py``) render their nats-server
``authorization`` block from ``users()`` below, and ``tests/k8s`` checks they agree.

Every subject comes from ``massgen_proto.subjects``. Each service gets what it
publishes and subscribes to and nothing more (least privilege):

- JetStream API subjects (``$JS.API.…``) are scoped to the streams and consumers the
  service uses: a worker may only pull from *its* provider's durable consumer and ack
  *its* messages, so it can neither receive another provider's turns nor create a
  consumer over them.
- Private inboxes: every user connects with its own inbox prefix
  (``massgen_proto.subjects.inbox_prefix(user)``, ``_INBOX_<user>``) and may subscribe
  only under it, so nobody overhears replies (pulled turns, verdicts, KV reads) meant
  for another user; nobody may subscribe to nats-py's default ``_INBOX.>``. Responders
  get ``allow_responses`` (they may publish only to the reply subject of a request
  they received) instead of any inbox publish right.
- Queue subscriptions are tied to their queue group (``"subject group"`` form).

Passwords are never here: each user's password is the environment variable
``password_env(user)`` of the nats-server process (a Secret in Kubernetes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from massgen_proto import subjects as s
from massgen_proto.tools import MAX_KEEPALIVES

__all__ = [
    "INBOX",
    "inbox",
    "Permissions",
    "api",
    "gateway",
    "orchestrator",
    "password_env",
    "render_authorization",
    "parse_authorization",
    "users",
    "worker",
    "worker_user",
]

JS_API = "$JS.API"
INBOX = "_INBOX.>"
"""nats-py's default inbox subjects: shared by every client, so granted to nobody."""


ORCHESTRATOR_USER = "orchestrator"
GATEWAY_USER = "mcp-gateway"
API_USER = "api"


def inbox(user: str) -> str:
    """Where ``user`` receives replies and push-consumer deliveries (its inbox prefix)."""
    return s.inbox_wildcard(user)


# Gateway subjects are owned by the gateway's part of proto; fall back to the family
# wildcard's members if this checkout predates them (same names as proto).
GATEWAY_TOOLS_LIST = getattr(s, "GATEWAY_TOOLS_LIST", f"{s.PREFIX}.gateway.tools.list")
GATEWAY_TOOLS_CALL = getattr(s, "GATEWAY_TOOLS_CALL", f"{s.PREFIX}.gateway.tools.call")
GATEWAY_CLOSE = getattr(s, "GATEWAY_CLOSE", f"{s.PREFIX}.gateway.close")
GATEWAY_CHECK = getattr(s, "GATEWAY_CHECK", f"{s.PREFIX}.gateway.check")
GATEWAY_QUEUE = getattr(s, "GATEWAY_QUEUE", "mcp-gateway")
GATEWAY_FILES = getattr(s, "GATEWAY_FILES", f"{s.PREFIX}.gateway.files")
GATEWAY_RUN_FILES = getattr(s, "GATEWAY_RUN_FILES", f"{s.PREFIX}.gateway.runfiles")
API_RUNS_BUCKET = getattr(s, "API_RUNS_BUCKET", "massgen_api_runs")
SESSIONS_BUCKET = getattr(s, "SESSIONS_BUCKET", "massgen_sessions")
USAGE_BUCKET = getattr(s, "USAGE_BUCKET", "massgen_usage")


@dataclass(frozen=True)
class Permissions:
    """One NATS user's rights; lists are kept sorted and free of duplicates."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool | int = False
    """May publish to the reply subject of a request it received (responders): True
    once per request, a number that many times (keep-alives before the answer)."""
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "publish", tuple(sorted(set(self.publish))))
        object.__setattr__(self, "subscribe", tuple(sorted(set(self.subscribe))))

    def as_dict(self) -> dict:
        """The nats-server ``permissions`` block."""
        block: dict = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.allow_responses is True:
            block["allow_responses"] = True
        elif self.allow_responses:
            block["allow_responses"] = {"max": int(self.allow_responses), "expires": "2h"}
        return block


# -- JetStream API subject families, scoped to one stream / consumer ---------------------


def _stream_ensure(stream: str) -> list[str]:
    """Look a stream up and create it if missing (services do this at start-up)."""
    return [f"{JS_API}.STREAM.INFO.{stream}", f"{JS_API}.STREAM.CREATE.{stream}"]


def _kv_read(bucket: str) -> list[str]:
    stream = f"KV_{bucket}"
    return [
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
    ]


def _kv_full(bucket: str) -> list[str]:
    """Create, read, write and list (``keys()`` runs an ordered consumer) one bucket."""
    stream = f"KV_{bucket}"
    return [
        *_kv_read(bucket),
        f"{JS_API}.STREAM.CREATE.{stream}",
        f"$KV.{bucket}.>",
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.DELETE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _ordered_consumers(stream: str) -> list[str]:
    """Ephemeral ordered consumers (replay of a stream by subject filter)."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.DELETE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _events_of(source: str) -> str:
    """The event subjects of every run for one publisher role (see subjects.EVENT_SOURCES)."""
    assert source in s.EVENT_SOURCES, source
    return f"{s.PREFIX}.events.*.{source}"


# -- the services ------------------------------------------------------------------------


def orchestrator() -> Permissions:
    """Owns runs: takes requests in its queue group, publishes turns, events, control."""
    queue = s.ORCHESTRATOR_QUEUE
    return Permissions(
        publish=[
            s.TURNS_WILDCARD,  # turn requests for every provider (JetStream publish)
            _events_of("run"),  # the run's authoritative events: answers, votes, status
            s.CONTROL_WILDCARD,
            GATEWAY_CLOSE,  # close a finished run's MCP sessions
            s.ORCHESTRATOR_EXECUTED,  # tell the other replicas an outbox is executed
            *_stream_ensure(s.TURNS_STREAM),
            *_stream_ensure(s.EVENTS_STREAM),
            *_kv_full(s.RUNS_BUCKET),
            # The pending-turns gauge: read the turn consumers' state.
            f"{JS_API}.CONSUMER.LIST.{s.TURNS_STREAM}",
            f"{JS_API}.CONSUMER.INFO.{s.TURNS_STREAM}.>",
            # A turn request JetStream gave up on: read it (to fail its turn), drop it.
            f"{JS_API}.STREAM.MSG.GET.{s.TURNS_STREAM}",
            f"{JS_API}.STREAM.MSG.DELETE.{s.TURNS_STREAM}",
        ],
        subscribe=[
            f"{s.SUBMIT_CREATE} {queue}",
            f"{s.TURN_UNDELIVERED} {queue}",
            f"{s.SUBMIT_REPORT} {queue}",
            s.REPORT_TO_REPLICA,  # the reports of the turns a replica published
            f"{s.SUBMIT_CANCEL} {queue}",
            s.ORCHESTRATOR_EXECUTED,
            inbox(ORCHESTRATOR_USER),
        ],
        allow_responses=True,
        description="orchestrator replicas",
    )


def worker_user(provider: str) -> str:
    """NATS user of the workers serving ``provider``."""
    s.validate_token(provider, "provider")
    return f"worker-{provider}"


def worker(provider: str) -> Permissions:
    """Executes ``provider``'s turns: pulls only from that provider's durable consumer."""
    consumer = s.provider_consumer(provider)
    stream = s.TURNS_STREAM
    return Permissions(
        publish=[
            *_stream_ensure(s.TURNS_STREAM),
            *_stream_ensure(s.EVENTS_STREAM),
            f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
            f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}.{s.turn_subject(provider)}",
            f"{JS_API}.CONSUMER.INFO.{stream}.{consumer}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            f"$JS.ACK.{stream}.{consumer}.>",  # ack / nak / in-progress / term
            _events_of("stream"),  # streamed output only: readers take no outcome from it
            s.SUBMIT_REPORT,
            s.REPORT_TO_REPLICA,  # to the replica that published the turn, first
            GATEWAY_TOOLS_LIST,
            GATEWAY_TOOLS_CALL,
            GATEWAY_FILES,  # its agents' uploads, images and generated files, in chunks
            GATEWAY_CHECK,  # its answers' code run against the task's examples
        ],
        subscribe=[
            s.CONTROL_WILDCARD,
            _events_of("run"),  # run_finished: the run's file search stores are deleted
            inbox(worker_user(provider)),
        ],
        description=f"agent workers of provider {provider}",
    )


def gateway() -> Permissions:
    """Brokers tool calls: answers in its queue group, reads and watches runs (to check
    turn capabilities), emits audit events, and watches run events to close a finished
    run's MCP sessions."""
    queue = GATEWAY_QUEUE
    return Permissions(
        publish=[
            _events_of("tools"),  # tool_denied audit events
            *_stream_ensure(s.EVENTS_STREAM),
            *_kv_read(s.RUNS_BUCKET),
            f"{JS_API}.STREAM.CREATE.KV_{s.RUNS_BUCKET}",  # ensure_runs_bucket at start-up
            # Watch of the runs bucket: keeps the turn capabilities it checks current.
            *_ordered_consumers(f"KV_{s.RUNS_BUCKET}"),
        ],
        subscribe=[
            f"{GATEWAY_TOOLS_LIST} {queue}",
            f"{GATEWAY_TOOLS_CALL} {queue}",
            f"{GATEWAY_CLOSE} {queue}",
            f"{GATEWAY_CHECK} {queue}",
            f"{GATEWAY_FILES} {queue}",
            f"{GATEWAY_RUN_FILES} {queue}",
            s.EVENTS_WILDCARD,
            inbox(GATEWAY_USER),
        ],
        allow_responses=MAX_KEEPALIVES + 1,  # keep-alives while it works, then the answer
        description="mcp-gateway replicas",
    )


def api() -> Permissions:
    """HTTP front: creates and cancels runs, replays events, keeps its own buckets."""
    return Permissions(
        publish=[
            s.SUBMIT_CREATE,
            s.SUBMIT_CANCEL,
            *_stream_ensure(s.TURNS_STREAM),
            *_stream_ensure(s.EVENTS_STREAM),
            *_ordered_consumers(s.EVENTS_STREAM),
            f"{JS_API}.STREAM.MSG.GET.{s.EVENTS_STREAM}",
            *_kv_read(s.RUNS_BUCKET),
            f"{JS_API}.STREAM.CREATE.KV_{s.RUNS_BUCKET}",  # ensure_runs_bucket at start-up
            *_kv_full(API_RUNS_BUCKET),
            *_kv_full(SESSIONS_BUCKET),
            *_kv_full(USAGE_BUCKET),
            GATEWAY_RUN_FILES,  # a run's artifacts for GET /v1/runs/{id}/files/...
        ],
        subscribe=[s.EVENTS_WILDCARD, inbox(API_USER)],
        description="api replicas",
    )


def users(providers: list[str]) -> dict[str, Permissions]:
    """Every NATS user of a deployment serving ``providers``, by user name."""
    table = {ORCHESTRATOR_USER: orchestrator(), API_USER: api(), GATEWAY_USER: gateway()}
    for provider in dict.fromkeys(providers):
        table[worker_user(provider)] = worker(provider)
    return table


def password_env(user: str) -> str:
    """Environment variable of the nats-server process holding ``user``'s password."""
    return "NATS_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


# -- nats-server configuration -------------------------------------------------------------


def render_authorization(providers: list[str]) -> str:
    """The nats-server ``authorization`` block (an include file) for ``providers``.

    Passwords are ``$NATS_PASSWORD_<USER>`` references that nats-server resolves from
    its environment, so the file itself holds no secret and can live in a ConfigMap.
    """
    lines = [
        "# Generated by deploy/k8s/generate.py from deploy/k8s/permissions.py; do not edit.",
        "authorization {",
        "  users = [",
    ]
    for name, perms in users(providers).items():
        body = json.dumps(perms.as_dict(), indent=2, sort_keys=True)
        body = body.replace("\n", "\n      ")
        lines.append(f"    # {perms.description}")
        lines.append("    {")
        lines.append(f"      user: {json.dumps(name)}")
        lines.append(f"      password: ${password_env(name)}")
        lines.append(f"      permissions: {body}")
        lines.append("    }")
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


_USER_BLOCK = re.compile(
    r'user:\s*"(?P<user>[^"]+)"\s*\n\s*password:\s*\$(?P<env>[A-Z0-9_]+)\s*\n'
    r"\s*permissions:\s*(?P<perms>\{.*?\n      \})",
    re.S,
)


def parse_authorization(text: str) -> dict[str, dict]:
    """Read back what ``render_authorization`` wrote: user -> {password_env, permissions}."""
    found = {}
    for match in _USER_BLOCK.finditer(text):
        found[match["user"]] = {
            "password_env": match["env"],
            "permissions": json.loads(match["perms"]),
        }
    return found

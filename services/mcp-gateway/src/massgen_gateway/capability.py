"""Turn capabilities: may this tool request act on this run? Pure: no I/O, no clock.

The orchestrator hands each turn a token, ``massgen_proto.ids.turn_token(secret,
turn_id)``, derived from the run's secret in the run state (the runs KV bucket, which
the gateway reads and workers cannot). A tool list or call request is allowed only
when it names, for a run that is not over, an agent whose *current* turn is the
request's ``turn_id``, in the request's ``phase`` and under the request's ``label``,
and carries that turn's token. So a worker can act only on turns it was handed, and a
token dies with its turn: once the agent's turn changed or the run ended, it is refused.

``RunCapabilities.from_state`` keeps only what the check needs from a run state (and
derives each current turn's token once), so ``check`` is a few dict lookups and one
constant-time comparison.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from massgen_proto.events import TERMINAL_STATUSES
from massgen_proto.ids import turn_token
from massgen_proto.record import RunRecord

__all__ = ["REASONS", "CurrentTurn", "RunCapabilities", "check"]

REASONS: dict[str, str] = {
    "unknown_run": "no such run",
    "run_over": "the run is over",
    "no_secret": "the run has no capability key",
    "unknown_agent": "no such agent in the run",
    "wrong_label": "the label is not this agent's",
    "no_turn": "the agent has no current turn",
    "missing_turn": "the request names no turn",
    "stale_turn": "the turn is not the agent's current turn",
    "wrong_phase": "the phase is not the turn's",
    "missing_token": "the request carries no turn token",
    "bad_token": "the turn token is wrong",
}
"""Every refusal reason (the value ``check`` returns) and what it means."""


@dataclass(frozen=True, slots=True)
class CurrentTurn:
    """One agent of a run, with its current turn (if any) and that turn's token."""

    label: str
    turn_id: str | None = None
    phase: str | None = None
    token: bytes | None = None
    """The turn's capability (ASCII bytes), None without a turn or a run secret."""


@dataclass(frozen=True, slots=True)
class RunCapabilities:
    """What the check needs of one run state, at one KV revision."""

    run_id: str
    revision: int
    status: str
    has_secret: bool
    agents: dict[str, CurrentTurn]
    """By agent id (config ``id``)."""

    @property
    def over(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_state(cls, state: dict, revision: int) -> RunCapabilities:
        """From a run state's parsed JSON (see ``from_record``).

        Raises:
            pydantic.ValidationError: not a run record.
        """
        return cls.from_record(RunRecord.model_validate(state), revision)

    @classmethod
    def from_record(cls, record: RunRecord, revision: int) -> RunCapabilities:
        """From a run as stored in the runs bucket (see ``massgen_proto.record``)."""
        secret = record.secret
        agents: dict[str, CurrentTurn] = {}
        for agent in record.agents:
            turn = agent.turn
            if turn is not None:
                token = turn_token(secret, turn.turn_id).encode() if secret else None
                agents[agent.agent_id] = CurrentTurn(agent.label, turn.turn_id, turn.phase, token)
            else:
                agents[agent.agent_id] = CurrentTurn(agent.label)
        return cls(
            run_id=record.run_id, revision=revision, status=record.status,
            has_secret=bool(secret), agents=agents,
        )  # fmt: skip


def check(
    run: RunCapabilities | None,
    *,
    agent_id: str,
    label: str,
    phase: str,
    turn_id: str | None,
    token: str,
) -> str | None:
    """None when the request may act, else the reason it may not (a key of ``REASONS``).

    Args:
        run: the run's capabilities (None: no such run is known).
        agent_id, label, phase, turn_id, token: as the request names them.
    """
    if run is None:
        return "unknown_run"
    if run.over:
        return "run_over"
    if not run.has_secret:
        return "no_secret"
    agent = run.agents.get(agent_id)
    if agent is None:
        return "unknown_agent"
    if agent.label != label:
        return "wrong_label"
    if agent.turn_id is None or agent.token is None:
        return "no_turn"
    if not turn_id:
        return "missing_turn"
    if turn_id != agent.turn_id:
        return "stale_turn"
    if phase != agent.phase:
        return "wrong_phase"
    if not token:
        return "missing_token"
    if not hmac.compare_digest(token.encode(errors="replace"), agent.token):
        return "bad_token"
    return None

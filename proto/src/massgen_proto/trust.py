"""Which of a run's events a reader may believe.

Two checks, both needed because workers run third-party code and may be compromised:

- by subject: answers, votes, winners and status come only from the orchestrator's
  subject (``events.entitled``);
- by turn: a worker's streamed events (chunks, token usage) count only when they carry
  the ``stream_tag`` the orchestrator announced in that turn's ``turn_started`` event,
  for that turn's agent. A worker learns the tag of a turn only by being handed the
  turn, so it cannot put words in another provider's agent's mouth, even in a run it
  takes part in.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict

from .events import (
    Chunk,
    RunEvent,
    RunFinished,
    TokenUsage,
    TurnStarted,
    entitled,
    trusted_event,
)
from .subjects import event_source

__all__ = ["StreamGate"]

_LOOKED_INTO = frozenset({"turn_started", "chunk", "token_usage", "run_finished"})


class StreamGate:
    """Admits events as a reader must (see the module doc); one gate can serve many runs.

    Turns are learnt from ``turn_started`` events, so the gate must see a run's events
    in order from before its first turn (``learn`` primes it otherwise, e.g. when a
    reader resumes in the middle of a run). A run's turns are forgotten at its
    ``run_finished``; at most ``max_runs`` runs are remembered (oldest dropped first).
    """

    def __init__(self, max_runs: int = 20_000) -> None:
        self._runs: OrderedDict[str, dict[str, tuple[str, str]]] = OrderedDict()
        """run id -> turn id -> (agent id, stream tag)."""
        self._max_runs = max_runs

    def admit(self, subject: str, data: bytes) -> RunEvent | None:
        """The event in ``data`` if a reader may believe it, else None."""
        event = trusted_event(subject, data)
        if event is None or not self.check(event):
            return None
        return event

    def allows(self, subject: str, data: bytes, kind: str) -> bool:
        """``admit`` for relays that pass the bytes on: only the kinds the gate looks
        into are parsed (``kind`` is the event's kind tag, read cheaply)."""
        if not entitled(event_source(subject), kind):
            return False
        return kind not in _LOOKED_INTO or self.admit(subject, data) is not None

    def check(self, event: RunEvent) -> bool:
        """Learn from an event already checked by subject (``events.trusted_event``);
        False for a streamed event without its turn's tag."""
        match event:
            case TurnStarted():
                self.learn(event)
            case Chunk() | TokenUsage():
                known = self._runs.get(event.run_id, {}).get(event.turn_id)
                return (
                    known is not None
                    and known[0] == event.agent
                    and hmac.compare_digest(known[1], event.tag)
                )
            case RunFinished():
                self._runs.pop(event.run_id, None)
        return True

    def learn(self, event: TurnStarted) -> None:
        """Remember a turn the orchestrator announced."""
        turns = self._runs.get(event.run_id)
        if turns is None:
            turns = self._runs[event.run_id] = {}
            while len(self._runs) > self._max_runs:
                self._runs.popitem(last=False)
        turns[event.turn_id] = (event.agent, event.stream_tag)

"""What one team run produced, from its events, for scoring.

- each member's **first answer**: its first ``answer_accepted`` event. Under the
  coordination rules first answers are written independently (a running first turn
  finishes; restarts wait for every first answer), so these are single-agent samples
  taken inside the team. A member whose first ``new_answer`` repeated an answer already
  in is recorded as a vote (``vote_accepted`` with ``same_answer``): its text is the
  ``new_answer`` call it made (``tool_call`` chunk), else the answer it repeated.
- the **winner's answer**: the winner's latest ``answer_accepted``;
- the **final answer**: the ``final_answer`` event (the presentation, or the stored
  answer when ``fallback``);
- cost: tokens of every ``token_usage`` event, model calls (``turn_started`` events:
  one per agent turn), and the run's wall time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from massgen_proto import events as ev

__all__ = ["RunOutcome", "fold_run"]


@dataclass
class RunOutcome:
    run_id: str = ""
    status: str = "running"
    message: str = ""
    agents: list[dict[str, str]] = field(default_factory=list)
    """``{"id", "label", "model", "provider"}`` in config order."""
    first_answers: dict[str, dict[str, str]] = field(default_factory=dict)
    """Agent id -> ``{"text", "version", "source"}`` (source: ``answer`` or ``repeat``)."""
    latest_answers: dict[str, dict[str, str]] = field(default_factory=dict)
    winner: str | None = None
    final_answer: str | None = None
    final_agent: str | None = None
    fallback: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_by_agent: dict[str, int] = field(default_factory=dict)
    model_calls: int = 0
    started: float | None = None
    finished: float | None = None

    @property
    def wall_seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return round(self.finished - self.started, 3)

    @property
    def winner_answer(self) -> dict[str, str] | None:
        return self.latest_answers.get(self.winner) if self.winner else None


def _new_answer_text(chunk: ev.Chunk) -> str | None:
    try:
        call: Any = json.loads(chunk.text)
    except ValueError:
        return None
    if not isinstance(call, dict) or call.get("name") != ev.ANSWER_TOOL:
        return None
    arguments = call.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    content = arguments.get("content") if isinstance(arguments, dict) else None
    return content if isinstance(content, str) else None


def fold_run(events: list[ev.RunEvent]) -> RunOutcome:
    """Fold a run's events (in order) into a :class:`RunOutcome`."""
    out = RunOutcome()
    attempted: dict[str, str] = {}
    """Agent -> text of its last ``new_answer`` call (a repeat is accepted as a vote)."""
    for event in events:
        out.run_id = event.run_id
        match event:
            case ev.RunCreated():
                out.started = event.ts
                out.agents = [
                    {"id": a.id, "label": a.label, "model": a.model, "provider": a.provider}
                    for a in event.agents
                ]
            case ev.TurnStarted():
                out.model_calls += 1
            case ev.TokenUsage():
                out.prompt_tokens += event.prompt_tokens
                out.completion_tokens += event.completion_tokens
                out.tokens_by_agent[event.agent] = (
                    out.tokens_by_agent.get(event.agent, 0)
                    + event.prompt_tokens
                    + event.completion_tokens
                )
            case ev.Chunk(channel="tool_call"):
                text = _new_answer_text(event)
                if text is not None:
                    attempted[event.agent] = text
            case ev.AnswerAccepted():
                record = {"text": event.content, "version": event.version, "source": "answer"}
                out.first_answers.setdefault(event.agent, record)
                out.latest_answers[event.agent] = record
            case ev.VoteAccepted(same_answer=True) if event.agent not in out.first_answers:
                repeated = out.latest_answers.get(event.target_agent, {})
                text = attempted.get(event.agent, repeated.get("text"))
                if text is not None:
                    out.first_answers[event.agent] = {
                        "text": text, "version": repeated.get("version", event.target),
                        "source": "repeat",
                    }  # fmt: skip
            case ev.FinalAnswer():
                out.final_answer = event.content
                out.final_agent = event.agent
                out.fallback = event.fallback
            case ev.RunFinished():
                out.status = event.status
                out.message = event.message
                out.finished = event.ts
                out.winner = event.winner or out.final_agent
            case _:
                pass
    if out.winner is None:
        out.winner = out.final_agent
    return out

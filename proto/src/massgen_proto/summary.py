"""Fold a run's events into its result: the one derivation every reader shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import events as ev

__all__ = ["AnswerRecord", "RunSummary", "VoteRecord", "summarize"]


@dataclass(slots=True)
class AnswerRecord:
    agent: str
    label: str
    version: str
    content: str


@dataclass(slots=True)
class VoteRecord:
    voter: str
    target: str
    reason: str


@dataclass(slots=True)
class RunSummary:
    """What a run produced so far, as derived from its events."""

    run_id: str
    question: str = ""
    status: ev.RunStatus = "running"
    message: str = ""
    final_answer: str | None = None
    winner: str | None = None
    answers: list[AnswerRecord] = field(default_factory=list)
    votes: dict[str, VoteRecord] = field(default_factory=dict)
    """Current votes by voter id (cleared whenever a new answer is accepted)."""
    agents: dict[str, str] = field(default_factory=dict)
    """Agent id -> status (waiting, working, answered, voted, failed, presenting, ...)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Agent id -> label."""
    tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    """Agent id -> {prompt_tokens, completion_tokens}."""
    costs: dict[str, float] = field(default_factory=dict)
    """Agent id -> US dollars of its tokens (litellm's price map; local models: 0)."""
    started_at: float | None = None
    first_turn_at: float | None = None
    finished_at: float | None = None

    @property
    def cost_usd(self) -> float:
        """Dollars of the whole run so far."""
        return sum(self.costs.values())

    def to_json(self, log_dir: str | None = None) -> dict:
        """The machine-readable result (``massgen --output json``)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "message": self.message,
            "final_answer": self.final_answer,
            "winner": self.winner,
            "answers": [
                {"agent": a.agent, "label": a.label, "version": a.version, "content": a.content}
                for a in self.answers
            ],
            "votes": [
                {"voter": v.voter, "target": v.target, "reason": v.reason}
                for v in self.votes.values()
            ],
            "agents": dict(self.agents),
            "tokens": {k: dict(v) for k, v in self.tokens.items()},
            "cost_usd": round(self.cost_usd, 6),
            "agent_costs_usd": {k: round(v, 6) for k, v in self.costs.items()},
            "duration_seconds": (
                round(self.finished_at - self.started_at, 3)
                if self.finished_at and self.started_at
                else None
            ),
            "log_dir": log_dir,
        }


def apply_event(summary: RunSummary, event: ev.RunEvent) -> RunSummary:
    """Update ``summary`` in place with one event and return it."""
    match event:
        case ev.RunCreated():
            summary.question = event.question
            summary.started_at = event.ts
            for agent in event.agents:
                summary.agents[agent.id] = "waiting"
                summary.labels[agent.id] = agent.label
        case ev.TurnStarted():
            summary.first_turn_at = summary.first_turn_at or event.ts
            summary.agents[event.agent] = "presenting" if event.phase == "present" else "working"
        case ev.AnswerAccepted():
            summary.answers.append(
                AnswerRecord(event.agent, event.label, event.version, event.content)
            )
            summary.votes.clear()
            summary.agents[event.agent] = "answered"
        case ev.VoteAccepted():
            summary.votes[event.agent] = VoteRecord(event.agent, event.target_agent, event.reason)
            summary.agents[event.agent] = "voted"
        case ev.TokenUsage():
            usage = summary.tokens.setdefault(
                event.agent, {"prompt_tokens": 0, "completion_tokens": 0}
            )
            usage["prompt_tokens"] += event.prompt_tokens
            usage["completion_tokens"] += event.completion_tokens
            if event.cost_usd:
                summary.costs[event.agent] = summary.costs.get(event.agent, 0.0) + event.cost_usd
        case ev.AgentFailed():
            summary.agents[event.agent] = "failed"
        case ev.AgentExcluded():
            summary.agents[event.agent] = "left out"
        case ev.Restart():
            summary.agents[event.agent] = "restarting"
        case ev.FinalAnswer():
            summary.final_answer = event.content
            summary.winner = event.agent
        case ev.RunFinished():
            summary.status = event.status
            summary.message = event.message
            summary.winner = event.winner if event.winner is not None else summary.winner
            summary.finished_at = event.ts
            if event.status == "completed" and summary.winner:
                summary.agents[summary.winner] = "winner"
        case _:
            pass
    return summary


def summarize(run_id: str, events: list[ev.RunEvent]) -> RunSummary:
    """Fold a whole event list into a RunSummary."""
    summary = RunSummary(run_id=run_id)
    for event in events:
        apply_event(summary, event)
    return summary

"""A run as the API shows it: its view and its links."""

from __future__ import annotations

from massgen_proto.summary import RunSummary

from ..models import AgentView, RunLinks, RunView, Timings
from ..records import RunIndexEntry

__all__ = ["links", "run_view"]


def links(run_id: str) -> RunLinks:
    base = f"/v1/runs/{run_id}"
    return RunLinks(self=base, events=f"{base}/events", cancel=f"{base}/cancel")


def run_view(record: RunIndexEntry, summary: RunSummary | None) -> RunView:
    summary = summary or RunSummary(run_id=record.run_id, question=record.question)
    data = summary.to_json()
    agents = [
        AgentView(
            id=agent,
            label=summary.labels.get(agent, ""),
            status=status,
            **summary.tokens.get(agent, {}),
            cost_usd=round(summary.costs.get(agent, 0.0), 6),
        )
        for agent, status in summary.agents.items()
    ]
    first = (
        round(summary.first_turn_at - summary.started_at, 3)
        if summary.first_turn_at and summary.started_at
        else None
    )
    return RunView(
        id=record.run_id,
        status=summary.status,
        message=summary.message,
        question=summary.question or record.question,
        team=record.team,
        session_id=record.session_id,
        final_answer=summary.final_answer,
        winner=summary.winner,
        answers=data["answers"],
        votes=data["votes"],
        agents=agents,
        warnings=record.warnings,
        cost_usd=round(summary.cost_usd, 6),
        timings=Timings(
            created_at=record.created_at,
            started_at=summary.started_at,
            first_turn_at=summary.first_turn_at,
            finished_at=summary.finished_at,
            duration_seconds=data["duration_seconds"],
            time_to_first_turn_seconds=first,
        ),
        links=links(record.run_id),
    )

"""Builders for turn requests in worker tests (workflow tools as the orchestrator offers them)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from massgen_orchestrator import prompts
from massgen_proto.messages import (
    BackendSpec,
    ChatMessage,
    TurnRequest,
    Verdict,
    WorkflowSubmission,
)

__all__ = ["Orchestrator", "make_turn_request", "workflow_tools"]


def workflow_tools(labels: list[str] | None = None) -> list[dict[str, Any]]:
    """The orchestrator's own workflow tools: ``new_answer`` always, ``vote`` for
    ``labels`` when some agent has an answer."""
    return prompts.workflow_tools(labels or [], can_answer=True)


def make_turn_request(
    model: str,
    base_url: str,
    *,
    run_id: str | None = None,
    label: str = "agent1",
    phase: str = "coordinate",
    number: int = 1,
    tools: list[dict[str, Any]] | None = None,
    timeout: float = 30.0,
    max_attempts: int = 3,
    question: str = "What is 2 + 2?",
) -> TurnRequest:
    """A turn for ``model`` served by the fake model at ``base_url`` (chatcompletion backend)."""
    run_id = run_id or uuid.uuid4().hex[:16]
    return TurnRequest(
        run_id=run_id,
        turn_id=f"{run_id}-{label}-t{number}",
        agent_id=f"id-{label}",
        label=label,
        phase=phase,  # type: ignore[arg-type]
        number=number,
        answer_set_version=0,
        backend=BackendSpec(
            type="chatcompletion", model=model, base_url=base_url, api_key="sk-fake"
        ),
        messages=[
            ChatMessage(role="system", content="You are a helpful agent."),
            ChatMessage(role="user", content=question),
        ],
        tools=workflow_tools() if tools is None and phase == "coordinate" else (tools or []),
        deadline=time.time() + timeout,
        max_attempts=max_attempts,
    )


class Orchestrator:
    """Records reports; answers with scripted verdicts (accepted when the script is empty)."""

    def __init__(self, *verdicts: Verdict):
        self.verdicts = list(verdicts)
        self.reports: list = []
        self.events: list = []

    async def submit(self, report):
        self.reports.append(report)
        if isinstance(report, WorkflowSubmission) and self.verdicts:
            return self.verdicts.pop(0)
        return Verdict(status="accepted")

    async def emit(self, event):
        self.events.append(event)

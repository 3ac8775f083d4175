"""Run events out of a transition: who an event is about, and emitting it as a command."""

from __future__ import annotations

from typing import Any

from massgen_proto import events as ev

from .commands import Command, EmitEvent
from .state import AgentState, RunState

__all__ = ["emit", "event_ids"]


def event_ids(state: RunState, agent: AgentState) -> dict[str, Any]:
    """The fields naming the run and the agent of an agent's event."""
    return {"run_id": state.run_id, "agent": agent.agent_id, "label": agent.label}


def emit(commands: list[Command], event: ev.RunEvent) -> None:
    commands.append(EmitEvent(event=event))

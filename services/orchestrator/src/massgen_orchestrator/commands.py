"""What the coordination state machine decides, as data, and the Tick input.

``coordination.apply`` returns a list of these; ``service.py`` executes them in order
and does nothing it was not told to.
"""

from __future__ import annotations

from typing import Annotated, Literal

from massgen_proto.events import RunEvent
from massgen_proto.messages import CancelTurn, TurnRequest, Verdict
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "CancelTurnCommand",
    "Command",
    "CommandAdapter",
    "EmitEvent",
    "PublishTurn",
    "ReplyVerdict",
    "Tick",
]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PublishTurn(_Command):
    """Publish a turn request on its provider's turn subject."""

    kind: Literal["publish_turn"] = "publish_turn"
    provider: str
    """Worker pool that serves the agent's backend."""
    request: TurnRequest


class CancelTurnCommand(_Command):
    """Tell workers to stop a running (or queued) turn."""

    kind: Literal["cancel_turn"] = "cancel_turn"
    cancel: CancelTurn


class EmitEvent(_Command):
    """Publish a run event on the run's event subject."""

    kind: Literal["emit_event"] = "emit_event"
    event: RunEvent


class ReplyVerdict(_Command):
    """Answer the worker report being handled."""

    kind: Literal["reply_verdict"] = "reply_verdict"
    verdict: Verdict


Command = Annotated[
    PublishTurn | CancelTurnCommand | EmitEvent | ReplyVerdict, Field(discriminator="kind")
]
CommandAdapter: TypeAdapter[Command] = TypeAdapter(Command)


class Tick(_Command):
    """Time passed: the adapter sends it at ``state.next_wakeup()``."""

    kind: Literal["tick"] = "tick"

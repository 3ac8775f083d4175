"""Line-by-line run display (``simple``): readable in a pipe, a log or a terminal.

Agents stream at the same time, so text is buffered per agent and printed a whole
line at a time with the agent's label in front; nothing interleaves mid-line.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO, assert_never

from massgen_proto import events as ev

__all__ = ["SimpleDisplay"]

_WORKFLOW_TOOLS = frozenset({"new_answer", "vote"})


def _workflow_tool(chunk_text: str) -> bool:
    """True for a tool-call / tool-result chunk of a workflow tool (JSON with ``name``)."""
    try:
        return json.loads(chunk_text).get("name") in _WORKFLOW_TOOLS
    except (ValueError, AttributeError):
        return False


class SimpleDisplay:
    """Prints a run's events as labelled lines."""

    def __init__(self, stream: TextIO | None = None, show_reasoning: bool = False) -> None:
        self._out = stream or sys.stdout
        self._pending: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._show_reasoning = show_reasoning

    def _print(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def _tag(self, label: str) -> str:
        return f"[{label} {self._names.get(label, '')}]".replace(" ]", "]")

    def _flush_agent(self, label: str) -> None:
        rest = self._pending.pop(label, "")
        if rest.strip():
            self._print(f"{self._tag(label)} {rest}")

    def _stream(self, label: str, text: str) -> None:
        buffer = self._pending.get(label, "") + text
        *lines, rest = buffer.split("\n")
        for line in lines:
            if line.strip():
                self._print(f"{self._tag(label)} {line}")
        self._pending[label] = rest

    def __call__(self, event: ev.RunEvent) -> None:
        """Render one event."""
        match event:
            case ev.RunCreated():
                self._names = {a.label: a.id for a in event.agents}
                team = ", ".join(f"{a.label}={a.id} ({a.provider}/{a.model})" for a in event.agents)
                self._print(f"run {event.run_id}: {len(event.agents)} agent(s): {team}")
            case ev.TurnStarted():
                note = f", redelivery {event.delivery}" if event.delivery > 1 else ""
                what = "presenting" if event.phase == "present" else f"turn {event.number}"
                self._print(f"{self._tag(event.label)} … {what}{note}")
            case ev.Chunk(channel="content"):
                self._stream(event.label, event.text)
            case ev.Chunk(channel="reasoning"):
                if self._show_reasoning:
                    self._stream(event.label, event.text)
            case ev.Chunk():
                if _workflow_tool(event.text):
                    return  # the accepted / rejected line that follows says it better
                self._flush_agent(event.label)
                self._print(f"{self._tag(event.label)} [{event.channel}] {event.text}")
            case ev.TokenUsage():
                pass
            case ev.AnswerAccepted():
                self._flush_agent(event.label)
                self._print(f"{self._tag(event.label)} ✓ answer {event.version} accepted")
            case ev.WorkflowRejected():
                self._flush_agent(event.label)
                self._print(
                    f"{self._tag(event.label)} ✗ {event.tool or 'no tool call'}: {event.error}"
                )
            case ev.VoteAccepted():
                self._flush_agent(event.label)
                self._print(f"{self._tag(event.label)} ✓ voted for {event.target}: {event.reason}")
            case ev.VoteDiscarded():
                self._flush_agent(event.label)
                self._print(
                    f"{self._tag(event.label)} ↺ vote for {event.target} discarded: {event.reason}"
                )
            case ev.Restart():
                self._flush_agent(event.label)
                self._print(f"{self._tag(event.label)} ↻ restart: {event.reason}")
            case ev.AgentError():
                self._flush_agent(event.label)
                retry = f", retry in {event.retry_in:.1f}s" if event.retry_in is not None else ""
                self._print(
                    f"{self._tag(event.label)} ! error ({event.failures}){retry}: {event.error}"
                )
            case ev.AgentFailed():
                self._flush_agent(event.label)
                self._print(f"{self._tag(event.label)} ✗ failed: {event.error}")
            case ev.Consensus():
                tally = ", ".join(f"{label}: {n}" for label, n in event.votes.items()) or "no votes"
                self._print(
                    f"consensus: winner {event.winner_label} ({event.winner}); votes {tally}"
                )
            case ev.DeadlineReached():
                self._print(f"deadline reached with {event.answers} answer(s)")
            case ev.PresentationStarted():
                self._print(f"{self._tag(event.label)} presents the final answer")
            case ev.FinalAnswer():
                for label in list(self._pending):
                    self._flush_agent(label)
                note = (
                    " (stored answer: the presentation was empty or failed)"
                    if event.fallback
                    else ""
                )
                self._print(f"\n=== final answer from {event.label} ({event.agent}){note} ===")
                self._print(event.content.strip())
            case ev.RunFinished():
                message = f": {event.message}" if event.message else ""
                self._print(f"\nrun {event.run_id} {event.status}{message}")
            case _:
                assert_never(event)

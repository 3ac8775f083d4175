"""Run displays and how one is chosen.

- ``simple``: line by line, readable in a pipe, a log or a terminal. Agents stream at
  the same time, so text is buffered per agent and printed a whole line at a time
  (a long line in pieces at word breaks) with the agent's label in front; nothing
  interleaves mid-line. An answer being written shows as ``✎ providing answer:`` and
  its lines, a vote as ``☑ voting for agent2: reason``, tool calls and results as
  ``→`` / ``←`` lines.
- ``final``: only the final answer (``--no-display``).
- ``rich_terminal`` / ``terminal``: live frames, see :mod:`massgen_cli.live`.

Every display takes the same RunEvent stream (``display(event)``) and has
``start()``, ``tick()`` (called a few times a second by :func:`showing`, for timers
and throttled redraws) and ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TextIO, assert_never

from massgen_proto import events as ev

from .view import WAIT_NOTICE_SECONDS, RunView, tool_call_line, tool_result_line, vote_of

__all__ = [
    "DISPLAY_TYPES",
    "Display",
    "FinalOnlyDisplay",
    "SimpleDisplay",
    "choose_display_type",
    "make_display",
    "showing",
]

DISPLAY_TYPES = ("rich_terminal", "terminal", "simple", "final")

LINE_PIECE = 120
"""A streamed line longer than this is printed in pieces (at a word break), so a long
paragraph shows as it is written, not only once it ends."""


class Display(Protocol):
    """What every display offers."""

    def __call__(self, event: ev.RunEvent) -> None: ...
    def start(self) -> None: ...
    def tick(self) -> None: ...
    def close(self) -> None: ...


class SimpleDisplay:
    """Prints a run's events as labelled lines."""

    def __init__(
        self,
        stream: TextIO | None = None,
        show_reasoning: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._out = stream or sys.stdout
        self._pending: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._show_reasoning = show_reasoning
        self._view = RunView()
        self._clock = clock
        self._noticed: dict[str, int] = {}
        self._block: dict[str, str] = {}
        """Label -> the block its streamed text belongs to (``answer`` or ``content``)."""
        self._voted: set[str] = set()
        """Labels whose vote of the current turn has been printed."""
        self.interval = 1.0

    def start(self) -> None:
        """Nothing to set up: lines are printed as events arrive."""

    def close(self) -> None:
        """Print what is still buffered."""
        for label in list(self._pending):
            self._flush_agent(label)

    def tick(self) -> None:
        """Say so when an agent has worked a while without output (never a silent wait)."""
        now = self._clock()
        for label, agent in self._view.agents.items():
            waiting = agent.waiting_for(now)
            if waiting is None:
                self._noticed.pop(label, None)
                continue
            step = int(waiting // (2 * WAIT_NOTICE_SECONDS))
            if self._noticed.get(label, -1) < step:
                self._noticed[label] = step
                self._print(
                    f"{self._tag(label)} … waiting for the model ({waiting:.0f}s, no output yet)"
                )

    def _print(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def _tag(self, label: str) -> str:
        return f"[{label} {self._names.get(label, '')}]".replace(" ]", "]")

    def _flush_agent(self, label: str) -> None:
        rest = self._pending.pop(label, "")
        if rest.strip():
            self._print(f"{self._tag(label)} {rest}")

    def _stream(self, label: str, text: str, block: str = "content") -> None:
        if self._block.get(label, "content") != block:
            self._flush_agent(label)
            if block == "answer":
                self._print(f"{self._tag(label)} ✎ providing answer:")
            self._block[label] = block
        buffer = self._pending.get(label, "") + text
        *lines, rest = buffer.split("\n")
        while len(rest) > LINE_PIECE:
            cut = rest.rfind(" ", 0, LINE_PIECE)
            cut = cut if cut > 0 else LINE_PIECE
            lines.append(rest[:cut])
            rest = rest[cut:].lstrip(" ")
        for line in lines:
            if line.strip():
                self._print(f"{self._tag(label)} {line}")
        self._pending[label] = rest

    def _line(self, label: str, text: str) -> None:
        """One line of ``label``'s own, after what it has streamed so far."""
        self._flush_agent(label)
        self._block.pop(label, None)
        self._print(f"{self._tag(label)} {text}")

    def _chunk(self, event: ev.Chunk) -> None:
        label = event.label
        match event.channel:
            case "content":
                self._stream(label, event.text)
            case "reasoning":
                if self._show_reasoning:
                    self._stream(label, event.text)
            case "answer":
                self._stream(label, event.text, "answer")
            case "vote":
                vote = vote_of(event.text)
                if vote is not None:
                    self._line(label, f"☑ voting for {vote[0]}: {vote[1]}")
                    self._voted.add(label)
            case "tool_call":
                if (line := tool_call_line(event.text)) is not None:
                    self._line(label, line)
            case "tool_result":
                if (line := tool_result_line(event.text)) is not None:
                    self._line(label, line)
            case _:
                pass  # tool_args: the whole call follows; unknown channels are skipped

    def __call__(self, event: ev.RunEvent) -> None:
        """Render one event."""
        self._view.apply(event)
        match event:
            case ev.RunCreated():
                self._run_created(event)
            case ev.TurnStarted():
                self._turn_started(event)
            case ev.Chunk():
                self._chunk(event)
            case ev.TokenUsage():
                pass
            case ev.AnswerAccepted():
                self._line(event.label, f"✓ answer {event.version} accepted")
            case ev.WorkflowRejected():
                self._line(event.label, f"✗ {event.tool or 'no tool call'}: {event.error}")
                self._voted.discard(event.label)
            case ev.VoteAccepted():
                self._vote_accepted(event)
            case ev.VoteDiscarded():
                self._note(event.label, f"↺ vote for {event.target} discarded: {event.reason}")
            case ev.Restart():
                self._note(event.label, f"↻ restart: {event.reason}")
            case ev.AgentError():
                retry = f", retry in {event.retry_in:.1f}s" if event.retry_in is not None else ""
                self._note(event.label, f"! error ({event.failures}){retry}: {event.error}")
            case ev.AgentFailed():
                self._note(event.label, f"✗ failed: {event.error}")
            case ev.AgentExcluded():
                self._note(event.label, f"✗ left out (provider failing): {event.error}")
            case ev.Consensus():
                tally = ", ".join(f"{label}: {n}" for label, n in event.votes.items()) or "no votes"
                self._print(
                    f"consensus: winner {event.winner_label} ({event.winner}); votes {tally}"
                )
            case ev.DeadlineReached():
                self._print(f"deadline reached with {event.answers} answer(s)")
            case ev.BudgetReached():
                self._print(
                    f"budget reached ({event.limit}: {event.tokens} tokens, "
                    f"${event.cost_usd:.4f}) with {event.answers} answer(s)"
                )
            case ev.PresentationStarted():
                self._print(f"{self._tag(event.label)} presents the final answer")
            case ev.FinalAnswer():
                self._final_answer(event)
            case ev.ToolDenied():
                self._note(event.label, f"⛔ {event.tool} denied {event.path} ({event.rule})")
            case ev.RunFinished():
                message = f": {event.message}" if event.message else ""
                self._print(f"\nrun {event.run_id} {event.status}{message}")
            case _:
                assert_never(event)

    def _note(self, label: str, text: str) -> None:
        """A tagged line about ``label`` (an error, a restart) after its buffered output;
        unlike :meth:`_line`, the block it was streaming goes on afterwards."""
        self._flush_agent(label)
        self._print(f"{self._tag(label)} {text}")

    def _run_created(self, event: ev.RunCreated) -> None:
        self._names = {a.label: a.id for a in event.agents}
        team = ", ".join(f"{a.label}={a.id} ({a.provider}/{a.model})" for a in event.agents)
        self._print(f"run {event.run_id}: {len(event.agents)} agent(s): {team}")

    def _turn_started(self, event: ev.TurnStarted) -> None:
        note = f", redelivery {event.delivery}" if event.delivery > 1 else ""
        what = "presenting" if event.phase == "present" else f"turn {event.number}"
        self._flush_agent(event.label)
        self._block.pop(event.label, None)
        self._voted.discard(event.label)
        self._print(f"{self._tag(event.label)} … {what}{note}")

    def _vote_accepted(self, event: ev.VoteAccepted) -> None:
        if event.label in self._voted:  # its reason is on the "voting for" line
            self._line(event.label, f"✓ voted for {event.target}")
        else:
            self._line(event.label, f"✓ voted for {event.target}: {event.reason}")
        self._voted.discard(event.label)

    def _final_answer(self, event: ev.FinalAnswer) -> None:
        for label in list(self._pending):
            self._flush_agent(label)
        note = " (stored answer: the presentation was empty or failed)" if event.fallback else ""
        self._print(f"\n=== final answer from {event.label} ({event.agent}){note} ===")
        self._print(event.content.strip())


class FinalOnlyDisplay:
    """``--no-display``: print only the final answer (and how the run ended, on stderr)."""

    interval = 1.0

    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = stream or sys.stdout
        self._final: str | None = None

    def start(self) -> None:
        """Nothing to set up."""

    def tick(self) -> None:
        """Nothing moves on screen."""

    def close(self) -> None:
        """Nothing buffered."""

    def __call__(self, event: ev.RunEvent) -> None:
        """Remember the final answer; print it when the run ends."""
        if isinstance(event, ev.FinalAnswer):
            self._final = event.content
        elif isinstance(event, ev.RunFinished):
            if self._final is not None:
                self._out.write(self._final.strip() + "\n")
                self._out.flush()
            if event.status != "completed":
                message = f": {event.message}" if event.message else ""
                print(f"run {event.run_id} {event.status}{message}", file=sys.stderr)


def choose_display_type(
    flag: str | None, no_display: bool, configured: str | None, stream: TextIO
) -> str:
    """Pick the display: ``--display`` > ``--no-display`` > config ``ui`` > terminal or not.

    A live display asked for by the config falls back to ``simple`` when the output
    is not a terminal (a pipe or a file gets readable lines, not cursor moves).
    """
    if flag:
        return flag
    if no_display:
        return "final"
    tty = hasattr(stream, "isatty") and stream.isatty()
    if configured in ("rich_terminal", "terminal", "simple"):
        return configured if tty or configured == "simple" else "simple"
    return "rich_terminal" if tty else "simple"


def make_display(kind: str, stream: TextIO | None = None, **options: Any) -> Display:
    """Build the display named ``kind`` (one of ``DISPLAY_TYPES``)."""
    if kind == "rich_terminal":
        from .live import RichDisplay

        return RichDisplay(stream, **options)
    if kind == "terminal":
        from .live import TerminalDisplay

        return TerminalDisplay(stream, **options)
    if kind == "simple":
        options.pop("keys", None)
        options.pop("fps", None)
        return SimpleDisplay(stream, **options)
    if kind == "final":
        return FinalOnlyDisplay(stream)
    raise ValueError(f"unknown display {kind!r}: use one of {', '.join(DISPLAY_TYPES)}")


@contextlib.asynccontextmanager
async def showing(display: Display) -> AsyncIterator[Display]:
    """Start ``display``, tick it while the block runs, close it afterwards."""

    async def ticker() -> None:
        while True:
            await asyncio.sleep(getattr(display, "interval", 0.125))
            display.tick()

    display.start()
    task = asyncio.ensure_future(ticker())
    try:
        yield display
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        display.close()

"""The coordination table: one column per agent, one row per coordination event.

``coordination_rows(events)`` is pure (events in, rows out); ``render_plain`` and
``render_rich`` only draw the rows. Streamed chunks and token counts are not rows:
the table is the story of who answered, voted, restarted and won.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, assert_never

from massgen_proto import events as ev

__all__ = [
    "RUN_COLUMN",
    "Row",
    "TableData",
    "coordination_rows",
    "coordination_table",
    "render_plain",
    "render_rich",
]

RUN_COLUMN = "run"
"""Column of run-level events (consensus, deadline, end of run)."""

PREVIEW_CHARS = 60


def _preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class Row:
    """One event of the table."""

    seconds: float
    """Seconds since the run was created."""
    column: str
    """Agent label, or ``RUN_COLUMN``."""
    text: str


@dataclass(frozen=True, slots=True)
class TableData:
    """Columns (agent labels, then ``run``) and rows, in event order."""

    columns: list[str]
    names: dict[str, str]
    """Label -> config id."""
    rows: list[Row]


def _cell(event: ev.RunEvent) -> tuple[str, str] | None:
    """(column, text) of one event, or None when it is not a coordination step."""
    match event:
        case ev.RunCreated():
            return RUN_COLUMN, f"started: {_preview(event.question, 40)}"
        case ev.TurnStarted():
            if event.phase == "present":
                return None  # PresentationStarted says it
            note = f" (redelivered {event.delivery})" if event.delivery > 1 else ""
            return event.label, f"started turn {event.number}{note}"
        case ev.Chunk() | ev.TokenUsage():
            return None
        case ev.AnswerAccepted():
            return event.label, f"answer {event.version}: {_preview(event.content)}"
        case ev.WorkflowRejected():
            return event.label, f"rejected {event.tool or 'no tool call'}: {_preview(event.error)}"
        case ev.VoteAccepted():
            return event.label, f"vote {event.target}: {_preview(event.reason)}"
        case ev.VoteDiscarded():
            return event.label, f"vote {event.target} discarded: {_preview(event.reason)}"
        case ev.Restart():
            how = "interrupted, restart" if event.interrupted else "restart"
            return event.label, f"{how}: {_preview(event.reason)}"
        case ev.AgentError():
            return event.label, f"error {event.failures}: {_preview(event.error)}"
        case ev.AgentFailed():
            return event.label, f"failed: {_preview(event.error)}"
        case ev.AgentExcluded():
            return event.label, f"left out: {_preview(event.error)}"
        case ev.Consensus():
            tally = ", ".join(f"{label} {n}" for label, n in event.votes.items()) or "no votes"
            return RUN_COLUMN, f"consensus: {event.winner_label} wins ({tally})"
        case ev.DeadlineReached():
            return RUN_COLUMN, f"deadline: {event.answers} answer(s)"
        case ev.BudgetReached():
            return RUN_COLUMN, f"budget ({event.limit}): {event.answers} answer(s)"
        case ev.PresentationStarted():
            return event.label, "presenting"
        case ev.FinalAnswer():
            note = " (stored answer)" if event.fallback else ""
            return event.label, f"final{note}: {_preview(event.content)}"
        case ev.ToolDenied():
            return event.label, f"denied {event.tool} {event.path} ({event.rule})"
        case ev.RunFinished():
            message = f": {_preview(event.message)}" if event.message else ""
            return RUN_COLUMN, f"{event.status}{message}"
        case _:
            assert_never(event)


def coordination_rows(events: Iterable[ev.RunEvent]) -> TableData:
    """Build the table from a run's events (in order)."""
    columns: list[str] = []
    names: dict[str, str] = {}
    rows: list[Row] = []
    start: float | None = None
    for event in events:
        if start is None:
            start = event.ts
        if isinstance(event, ev.RunCreated):
            for info in event.agents:
                if info.label not in columns:
                    columns.append(info.label)
                names[info.label] = info.id
        cell = _cell(event)
        if cell is None:
            continue
        column, text = cell
        if column != RUN_COLUMN and column not in columns:
            columns.append(column)
            names.setdefault(column, getattr(event, "agent", column))
        rows.append(Row(round(event.ts - start, 1), column, text))
    return TableData([*columns, RUN_COLUMN], names, rows)


def _header(data: TableData, column: str) -> str:
    name = data.names.get(column)
    return f"{column} ({name})" if name and name != column else column


def render_plain(data: TableData, width: int = 24) -> str:
    """The table as fixed-width text (what ``coordination_table.txt`` holds)."""
    time_width = 7
    cols = data.columns

    def line(cells: list[list[str]], time_cell: list[str]) -> list[str]:
        height = max(len(c) for c in [*cells, time_cell])
        out = []
        for i in range(height):
            parts = [time_cell[i] if i < len(time_cell) else ""]
            parts[0] = parts[0].rjust(time_width)
            for cell in cells:
                parts.append((cell[i] if i < len(cell) else "").ljust(width))
            out.append(" | ".join(parts).rstrip())
        return out

    rule = "-+-".join(["-" * time_width] + ["-" * width] * len(cols))
    text = line([textwrap.wrap(_header(data, c), width) or [""] for c in cols], ["t (s)"])
    text.append(rule)
    for row in data.rows:
        cells = [
            textwrap.wrap(row.text, width) if c == row.column else [] for c in cols
        ]  # fmt: skip
        text += line(cells, [f"{row.seconds:.1f}"])
    return "\n".join(text) + "\n"


def render_rich(data: TableData, title: str | None = None) -> Any:
    """The table as a ``rich.table.Table`` (for a terminal)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False, expand=True, header_style="bold")
    table.add_column("t (s)", justify="right", no_wrap=True, style="dim")
    for column in data.columns:
        table.add_column(_header(data, column), overflow="fold", ratio=1)
    for row in data.rows:
        cells = [row.text if c == row.column else "" for c in data.columns]
        style = "bold green" if row.text.startswith(("final", "consensus")) else None
        table.add_row(f"{row.seconds:.1f}", *cells, style=style)
    return table


def coordination_table(events: Iterable[ev.RunEvent], width: int = 24) -> str:
    """Shortcut: events -> plain text table."""
    return render_plain(coordination_rows(events), width)

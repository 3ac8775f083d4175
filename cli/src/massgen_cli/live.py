"""Live displays that redraw a frame: ``rich_terminal`` (panels) and ``terminal`` (columns).

Both fold events into a :class:`~massgen_cli.view.RunView` as they arrive. A change
asks for a frame at once, but frames come at most ``fps`` times a second (40: what
arrives is on screen within 25 ms, and several agents streaming hundreds of tokens a
second still cost 40 frames a second, never one per event); a ticker (see
:func:`massgen_cli.display.showing`) moves the clocks in between. A frame always fits
the screen, so nothing scrolls or tears.

The panels are drawn directly as text (box lines, ANSI colours where the terminal has
them), not laid out by rich per frame: a frame costs well under a millisecond, so the
display stays cheap at 40 frames a second, and only the lines that changed are
written. Rich renders what is not redrawn continuously: the coordination table and
the final answer's Markdown.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from massgen_proto import events as ev
from rich.cells import cell_len, set_cell_size

from .table import coordination_rows, render_plain, render_rich
from .tailwrap import TailWrap
from .view import AgentView, RunView

__all__ = ["FrameDisplay", "RichDisplay", "TerminalDisplay"]

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

_STATE_STYLE = {
    "waiting": "dim",
    "working": "yellow",
    "presenting": "bold yellow",
    "answered": "green",
    "voted": "cyan",
    "restarting": "magenta",
    "error": "red",
    "failed": "bold red",
    "winner": "bold green",
    "done": "dim",
}


def _clock_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


def agent_status_line(agent: AgentView, now: float) -> str:
    """Status, what it is doing, elapsed time of the turn, tokens (a spinner while waiting)."""
    parts = [
        agent.status.replace("working (turn ", "working t").rstrip(")")
        if agent.state == "working"
        else agent.status
    ]
    if agent.busy() and agent.activity:
        parts.append(agent.activity)
    if agent.busy() and agent.turn_started is not None:
        parts.append(_clock_text(now - agent.turn_started))
    waiting = agent.waiting_for(now)
    if waiting is not None:
        parts.insert(0, _SPINNER[int(now * 10) % len(_SPINNER)])
        parts.append(f"no output {waiting:.0f}s")
    parts.append(f"{agent.tokens} tok")
    return " · ".join(parts)


class FrameDisplay:
    """Common part: the view, the frame throttle, the `r` key, the end-of-run output.

    Args:
        clock: current time in event-time seconds (``time.time`` live; a replay's
            virtual clock when replaying).
        fps: most frames per second.
        keys: read single keys from the terminal (``r`` toggles the coordination table).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        fps: float = 40.0,
        keys: bool = True,
        show_reasoning: bool = False,
    ) -> None:
        self.view = RunView(show_reasoning=show_reasoning)
        self.clock = clock
        self.min_interval = 1.0 / fps
        self.interval = max(0.1, self.min_interval)
        """Ticker period: clocks and spinners (content changes ask for frames themselves)."""
        self._scheduled: asyncio.TimerHandle | None = None
        self._keys = keys
        self._dirty = True
        self._last_frame = 0.0
        self._last_second = -1
        self.show_table = False
        self._steps: list[ev.RunEvent] = []
        self._tty_state: Any = None
        self._key_fd: int | None = None
        self.frames = 0
        self._wraps: dict[str, tuple[TailWrap, int]] = {}
        """Per agent label: its wrapped output and how much of it (``appended``) it has."""

    # -- events ----------------------------------------------------------------------

    def __call__(self, event: ev.RunEvent) -> None:
        """Fold one event in; a frame follows as soon as the frame rate allows."""
        self.view.apply(event)
        if not isinstance(event, ev.Chunk | ev.TokenUsage):
            self._steps.append(event)  # the coordination table needs only these
        self._dirty = True
        self._ask_frame()

    def _ask_frame(self) -> None:
        """Draw at the earliest moment the frame rate allows (on the running loop)."""
        if self._scheduled is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (tests driving tick() by hand): the ticker draws
        wait = self._last_frame + self.min_interval - time.monotonic()
        self._scheduled = loop.call_later(max(0.0, wait), self._frame_due)

    def _frame_due(self) -> None:
        self._scheduled = None
        self.tick()
        if self._dirty:  # woke a hair early: try again at the right moment
            self._ask_frame()

    def tail_lines(self, agent: AgentView, width: int, height: int) -> list[str]:
        """The last ``height`` lines of an agent's output, wrapped to ``width`` cells.

        Only text that arrived since the last frame is wrapped (see ``tailwrap``).
        """
        wrap, seen = self._wraps.get(agent.label, (None, 0))
        new = agent.appended - seen
        if wrap is None or wrap.width != width or wrap.keep < height or new > len(agent.text):
            wrap, new = TailWrap(width, keep=max(height, 48)), len(agent.text)
        if new:
            wrap.feed(agent.text[len(agent.text) - new :])
        self._wraps[agent.label] = (wrap, agent.appended)
        lines = wrap.lines(height + 1)
        if lines and not lines[-1]:
            lines.pop()  # the output ends with a newline: no empty line at the bottom
        return lines[-height:] if height > 0 else []

    def table_text(self, width: int = 24) -> str:
        """The coordination table of the run so far, as text."""
        return render_plain(coordination_rows(self._steps), width)

    # -- frames ----------------------------------------------------------------------

    def tick(self) -> None:
        """Redraw when something changed (or a shown timer moved), at most ``fps`` a second."""
        now_wall = time.monotonic()
        if now_wall - self._last_frame < self.min_interval:
            return
        now = self.clock()
        second = int(now * 10) if self._spinning(now) else int(now)
        busy = any(a.busy() for a in self.view.agents.values())
        if not self._dirty and not (busy and second != self._last_second):
            return
        self._last_second = second
        self._dirty = False
        self._last_frame = now_wall
        self.frames += 1
        self.draw(now)

    def _spinning(self, now: float) -> bool:
        return any(a.waiting_for(now) is not None for a in self.view.agents.values())

    def draw(self, now: float) -> None:
        """Render one frame; each display mode defines it (the base draws nothing)."""

    # -- keys ------------------------------------------------------------------------

    def _start_keys(self) -> None:
        if not self._keys or not sys.stdin.isatty():
            return
        import asyncio
        import termios
        import tty

        try:
            fd = sys.stdin.fileno()
            self._tty_state = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # single keys, no echo; Ctrl-C still interrupts
            asyncio.get_running_loop().add_reader(fd, self._on_key)
            self._key_fd = fd
        except (OSError, RuntimeError, termios.error):
            self._restore_keys()

    def _on_key(self) -> None:
        try:
            data = os.read(self._key_fd, 32) if self._key_fd is not None else b""
        except OSError:
            return
        if b"r" in data.lower():
            self.show_table = not self.show_table
            self._dirty = True
            self._last_frame = 0.0
            self.tick()

    def _restore_keys(self) -> None:
        if self._key_fd is not None:
            import asyncio

            try:
                asyncio.get_running_loop().remove_reader(self._key_fd)
            except RuntimeError:
                pass
            self._key_fd = None
        if self._tty_state is not None:
            import termios

            try:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._tty_state)
            except (OSError, termios.error):
                pass
            self._tty_state = None

    def start(self) -> None:
        """Begin showing frames (and reading keys)."""
        self._start_keys()

    def close(self) -> None:
        """Stop reading keys; subclasses draw the last frame and the final answer."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self._restore_keys()


_SGR = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "magenta": "35",
    "cyan": "36",
    "white": "37",
    "bold red": "1;31",
    "bold green": "1;32",
    "bold yellow": "1;33",
    "bold cyan": "1;36",
}
_LINE_STYLE = {"✓": "green", "☑": "cyan", "✎": "bold", "✗": "red", "!": "red", "⛔": "red",
               "→": "dim", "←": "dim", "↺": "magenta", "─": "dim"}  # fmt: skip
_UNICODE_BOX = ("╭", "╮", "╰", "╯", "─", "│")
_ASCII_BOX = ("+", "+", "+", "+", "-", "|")


class RichDisplay(FrameDisplay):
    """One panel per agent, an orchestrator line, the final answer as Markdown."""

    def __init__(self, stream: TextIO | None = None, **options: Any) -> None:
        super().__init__(**options)
        from rich.console import Console

        self.console = Console(file=stream or sys.stdout, highlight=False)
        self.hint = "r: coordination table"
        self._live = False
        self._closing = False
        self._drawn = 0
        """Lines of the frame on screen (the next one is drawn over it)."""
        self._drawn_width = 0
        self._screen: list[str] = []
        """The lines of the frame on screen."""
        self._table: tuple[int, int, list[str]] | None = None
        """The coordination table rendered: (events, width, lines)."""

    # -- styling ---------------------------------------------------------------------

    @property
    def _colour(self) -> bool:
        return self.console.is_terminal and self.console.color_system is not None

    def _styled(self, text: str, style: str) -> str:
        code = _SGR.get(style) if style and self._colour else None
        return f"\x1b[{code}m{text}\x1b[0m" if code else text

    def _box(self) -> tuple[str, ...]:
        return _UNICODE_BOX if self.console.encoding.lower().startswith("utf") else _ASCII_BOX

    @staticmethod
    def _fit(text: str, width: int) -> str:
        """``text`` cut (with an ellipsis) or padded to exactly ``width`` cells."""
        if cell_len(text) > width:
            return set_cell_size(text, max(0, width - 1)) + "…" if width > 0 else ""
        return set_cell_size(text, width)

    # -- a frame ---------------------------------------------------------------------

    def _edge(
        self, left: str, text: str, right: str, width: int, style: str, text_style: str = ""
    ) -> str:
        """A border line with ``text`` in it (``╭─ text ───╮``), ``width`` cells."""
        h = self._box()[4]
        label = f" {text} "
        if cell_len(label) > width - 3:
            label = self._fit(label, max(0, width - 3))
        fill = h * max(0, width - 3 - cell_len(label)) + right
        return (
            self._styled(left + h, style)
            + self._styled(label, text_style)
            + self._styled(fill, style)
        )

    def _panel(self, agent: AgentView, width: int, height: int, now: float) -> list[str]:
        """An agent's panel as ``height`` lines of exactly ``width`` cells."""
        tl, tr, bl, br, _h, v = self._box()
        style = _STATE_STYLE.get(agent.state, "") or "white"
        top = self._edge(tl, f"{agent.label} {agent.agent}", tr, width, style)
        top = top.replace(f" {agent.label} ", f" {self._styled(agent.label, 'bold')} ", 1)
        bottom = self._edge(bl, agent_status_line(agent, now), br, width, style, style)
        inner = width - 4
        body = self.tail_lines(agent, inner, height - 2)
        side = self._styled(v, style)
        lines = [top]
        for index in range(height - 2):
            line = body[index] if index < len(body) else ""
            text = set_cell_size(line, inner)
            mark = _LINE_STYLE.get(line[:1])
            lines.append(f"{side} {self._styled(text, mark) if mark else text} {side}")
        lines.append(bottom)
        return lines

    def frame_lines(self, now: float) -> list[str]:
        """The current frame: lines of exactly the console's width (styled if colour)."""
        view = self.view
        width, height = self.console.size
        elapsed = _clock_text(view.elapsed(now))
        prefix = f"MassGen {view.run_id} {view.phase} {elapsed}  "
        head = self._fit(prefix + view.question.replace("\n", " "), width)
        if self._colour and head.startswith(prefix):
            head = (
                self._styled("MassGen ", "bold") + self._styled(f"{view.run_id} ", "dim")
                + self._styled(f"{view.phase} {elapsed}  ", "bold cyan") + head[len(prefix) :]
            )  # fmt: skip
        orchestrator = self._fit("orchestrator " + view.orchestrator_line(), width)
        if self._colour and orchestrator.startswith("orchestrator "):
            orchestrator = self._styled("orchestrator", "bold") + orchestrator[12:]
        footer = self._styled(self._fit(self.hint, width), "dim")
        if self.show_table:
            body = self._table_lines(width, max(3, height - 4))
        else:
            body = self._panels(now, width, height)
        return [head, *body, orchestrator, footer][: max(1, height - 1)]

    def _panels(self, now: float, width: int, height: int) -> list[str]:
        agents = list(self.view.agents.values())
        if not agents:
            return []
        panel_height = max(5, min(height - 4, 24))  # a tail, not the whole screen
        count = len(agents)
        widths = [width // count + (1 if i < width % count else 0) for i in range(count)]
        panels = [
            self._panel(agent, max(6, w), panel_height, now)
            for agent, w in zip(agents, widths, strict=True)
        ]
        return ["".join(parts) for parts in zip(*panels, strict=True)]

    def _table_lines(self, width: int, height: int) -> list[str]:
        if self._table is None or self._table[:2] != (len(self._steps), width):
            with self.console.capture() as capture:
                self.console.print(
                    render_rich(coordination_rows(self._steps), title="coordination table"),
                    width=width,
                )
            lines = capture.get().rstrip("\n").split("\n")
            self._table = (len(self._steps), width, lines)
        lines = self._table[2][-height:]
        return [line + " " * max(0, width - _plain_len(line)) for line in lines]

    def render(self, now: float) -> Any:
        """The current frame as a rich renderable (to print it elsewhere, e.g. in tests)."""
        from rich.text import Text

        text = Text.from_ansi("\n".join(self.frame_lines(now)))
        text.no_wrap, text.overflow = True, "crop"
        return text

    # -- drawing ---------------------------------------------------------------------

    def start(self) -> None:
        if self.console.is_terminal:
            self.console.file.write("\x1b[?25l")  # no cursor blinking over the panels
        self._live = True
        super().start()

    def draw(self, now: float) -> None:
        """Write the frame over the last one: only the lines that changed (a streaming
        agent mostly changes one line of its panel a frame)."""
        if not self._live or not (self.console.is_terminal or self._closing):
            return  # not a terminal (a file): only the last frame, no cursor moves
        lines = self.frame_lines(now)
        width = self.console.size[0]
        out = []
        previous = self._screen
        if self._drawn:
            out.append("\r" + (f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""))
            if len(lines) != self._drawn or width != self._drawn_width:
                out.append("\x1b[J")  # a new shape: clear what the frame does not cover
                previous = []
        # Unchanged lines are skipped: "\n" alone moves down to the next one.
        out.append("\n".join(
            "" if index < len(previous) and previous[index] == line else line
            for index, line in enumerate(lines)
        ))  # fmt: skip
        self._drawn, self._drawn_width, self._screen = len(lines), width, lines
        self.console.file.write("".join(out))
        self.console.file.flush()

    def close(self) -> None:
        super().close()
        if not self._live:
            return
        from rich.markdown import Markdown
        from rich.panel import Panel

        self.show_table = False
        self.hint = ""
        self._closing = True
        self.draw(self.clock())
        self._live = False
        self.console.file.write("\n" if self._drawn else "")
        if self.console.is_terminal:
            self.console.file.write("\x1b[?25h")
        self.console.file.flush()
        view = self.view
        if view.final_answer is not None:
            agent = view.agents.get(view.winner_label or "")
            who = f"{view.winner_label} ({agent.agent})" if agent else str(view.winner_label)
            note = " · stored answer" if view.final_fallback else ""
            self.console.print(
                Panel(
                    Markdown(view.final_answer.strip() or "(empty)"),
                    title=f"[bold green]final answer[/] from {who}{note}",
                    title_align="left",
                    border_style="green",
                )
            )
        message = f": {view.message}" if view.message else ""
        style = "green" if view.status == "completed" else "red"
        self.console.print(f"[{style}]run {view.run_id} {view.status}[/]{message}")


def _plain_len(line: str) -> int:
    """Cells of a line once its ANSI escapes are left out."""
    import re

    return cell_len(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line))


class TerminalDisplay(FrameDisplay):
    """Plain-text columns redrawn in place (no colours, no box drawing)."""

    def __init__(self, stream: TextIO | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.out = stream or sys.stdout
        self._screen: list[str] = []
        """The lines of the frame on screen."""
        self._size: os.terminal_size | None = None

    def render(self, now: float) -> list[str]:
        """The current frame as lines, each at most the terminal's width."""
        size = shutil.get_terminal_size((100, 30))
        width, height = size.columns, size.lines
        view = self.view
        lines = [
            f"MassGen {view.run_id} {view.phase} {_clock_text(view.elapsed(now))}  "
            f"{view.question.replace(chr(10), ' ')}"[:width]
        ]
        if self.show_table:
            table = self.table_text(max(12, (width - 10) // max(1, len(view.agents) + 1) - 3))
            lines += [line[:width] for line in table.splitlines()][-(height - 3) :]
        else:
            agents = list(view.agents.values())
            col = max(10, (width - 3 * (len(agents) - 1)) // max(1, len(agents)))
            body = max(3, height - 6)
            heads = [f"{a.label} {a.agent}"[:col].ljust(col) for a in agents]
            states = [agent_status_line(a, now)[:col].ljust(col) for a in agents]
            tails = [self.tail_lines(agent, col, body) for agent in agents]
            lines.append(" | ".join(heads))
            lines.append(" | ".join(states))
            lines.append("-+-".join("-" * col for _ in agents))
            for i in range(body):
                row = [(t[i] if i < len(t) else "").ljust(col) for t in tails]
                lines.append(" | ".join(row).rstrip())
        lines.append(("orchestrator " + view.orchestrator_line())[:width])
        return lines[: max(1, height - 1)]

    def draw(self, now: float) -> None:
        """Redraw from the top: only the lines that changed (``\\n`` skips the others)."""
        lines = self.render(now)
        size = shutil.get_terminal_size((100, 30))
        same_shape = len(self._screen) == len(lines) and size == self._size
        previous, self._size = (self._screen if same_shape else []), size
        body = "\n".join(
            "" if index < len(previous) and previous[index] == line else line + "\x1b[K"
            for index, line in enumerate(lines)
        )
        self._screen = lines
        self.out.write("\x1b[H" + body + "\n\x1b[J")
        self.out.flush()

    def start(self) -> None:
        self.out.write("\x1b[2J\x1b[H")
        super().start()

    def close(self) -> None:
        super().close()
        self.show_table = False
        self.draw(self.clock())
        view = self.view
        if view.final_answer is not None:
            self.out.write(f"\n=== final answer from {view.winner_label} ===\n")
            self.out.write(view.final_answer.strip() + "\n")
        message = f": {view.message}" if view.message else ""
        self.out.write(f"\nrun {view.run_id} {view.status}{message}\n")
        self.out.flush()

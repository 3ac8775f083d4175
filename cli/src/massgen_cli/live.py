"""Live displays that redraw a frame: ``rich_terminal`` (panels) and ``terminal`` (columns).

Both fold events into a :class:`~massgen_cli.view.RunView` as they arrive and redraw
at most ``fps`` times a second from a ticker (see :func:`massgen_cli.display.showing`),
never once per event: several agents streaming hundreds of tokens a second cost a
few frames a second, and a frame always fits the screen, so nothing scrolls or tears.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from massgen_proto import events as ev

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
    """Status, elapsed time of the current turn, tokens (and a spinner while waiting)."""
    parts = [
        agent.status.replace("working (turn ", "working t").rstrip(")")
        if agent.state == "working"
        else agent.status
    ]
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
        fps: float = 8.0,
        keys: bool = True,
        show_reasoning: bool = False,
    ) -> None:
        self.view = RunView(show_reasoning=show_reasoning)
        self.clock = clock
        self.min_interval = 1.0 / fps
        self.interval = self.min_interval
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
        """Fold one event in; the next tick draws it."""
        self.view.apply(event)
        if not isinstance(event, ev.Chunk | ev.TokenUsage):
            self._steps.append(event)  # the coordination table needs only these
        self._dirty = True

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
        self._restore_keys()


class RichDisplay(FrameDisplay):
    """One rich panel per agent, an orchestrator line, the final answer as Markdown."""

    def __init__(self, stream: TextIO | None = None, **options: Any) -> None:
        super().__init__(**options)
        from rich.console import Console

        self.console = Console(file=stream or sys.stdout, highlight=False)
        self._live: Any = None
        self.hint = "r: coordination table"

    def start(self) -> None:
        from rich.live import Live

        self._live = Live(
            console=self.console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="crop",
        )
        self._live.start()
        super().start()

    def _tail(self, agent: AgentView, width: int, height: int) -> Any:
        from rich.text import Text

        body = Text("\n".join(self.tail_lines(agent, width, height)))
        body.no_wrap, body.overflow = True, "crop"
        return body

    def render(self, now: float) -> Any:
        """The current frame."""
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        view = self.view
        width, height = self.console.size
        elapsed = _clock_text(view.elapsed(now))
        head = Text.assemble(
            ("MassGen ", "bold"),
            (f"{view.run_id} ", "dim"),
            (f"{view.phase} {elapsed}  ", "bold cyan"),
            (view.question.replace("\n", " ")[: max(10, width - 40)], ""),
        )
        orchestrator = Text.assemble(("orchestrator ", "bold"), (view.orchestrator_line(), ""))
        orchestrator.no_wrap, orchestrator.overflow = True, "ellipsis"
        head.no_wrap, head.overflow = True, "ellipsis"
        footer = Text(self.hint, style="dim")
        if self.show_table:
            body: Any = render_rich(coordination_rows(self._steps), title="coordination table")
            return Group(head, body, orchestrator, footer)
        agents = list(view.agents.values()) or []
        panel_height = max(5, min(height - 4, 24))  # a tail, not the whole screen
        grid = Table.grid(expand=True, padding=(0, 0))
        for _ in agents or [None]:
            grid.add_column(ratio=1)
        inner = max(8, width // max(1, len(agents)) - 4)
        panels = []
        for agent in agents:
            style = _STATE_STYLE.get(agent.state, "")
            panels.append(
                Panel(
                    self._tail(agent, inner, panel_height - 2),
                    title=f"[bold]{agent.label}[/] {agent.agent}",
                    title_align="left",
                    subtitle=Text(agent_status_line(agent, now), style=style),
                    subtitle_align="left",
                    border_style=style or "white",
                    height=panel_height,
                )
            )
        if panels:
            grid.add_row(*panels)
        return Group(head, grid, orchestrator, footer)

    def draw(self, now: float) -> None:
        if self._live is not None:
            self._live.update(self.render(now), refresh=True)

    def close(self) -> None:
        super().close()
        if self._live is None:
            return
        from rich.markdown import Markdown
        from rich.panel import Panel

        self.show_table = False
        self.hint = ""
        self._live.update(self.render(self.clock()), refresh=True)
        self._live.stop()
        self._live = None
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


class TerminalDisplay(FrameDisplay):
    """Plain-text columns redrawn in place (no colours, no box drawing)."""

    def __init__(self, stream: TextIO | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.out = stream or sys.stdout

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
        frame = "\x1b[H" + "\x1b[K\n".join(self.render(now)) + "\x1b[K\n\x1b[J"
        self.out.write(frame)
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

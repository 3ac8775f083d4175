"""``massgen`` with no question: an interactive multi-turn session on one stack."""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

from ..exits import EXIT_OK
from ..targets import RunTarget, StackTarget
from .turn import run_on, run_session_turn

__all__ = ["interactive"]

_QUIT = frozenset({"/quit", "/exit", "/q"})


async def interactive(args: argparse.Namespace, config: dict[str, Any], session: Any) -> int:
    """Ask, run, record, until /quit, Ctrl-D or two Ctrl-C; the session is saved per turn."""
    target = StackTarget(
        config, session.directory, embedded=args.embedded, debug=args.debug,
        background=getattr(args, "background", False),
    )  # fmt: skip
    turns = session.turns()
    print(
        f"MassGen interactive session {session.id}"
        + (f" (resumed: {len(turns)} turn(s))" if turns else "")
        + "\n  /clear forgets the conversation, /quit /exit /q or Ctrl-D leave, "
        "Ctrl-C cancels a running turn, /table shows the last coordination table\n"
        f"  saved in {session.directory}",
        flush=True,
    )
    return await run_on(target, args, session.directory, lambda: _turns(target, args, session))


async def _turns(target: RunTarget, args: argparse.Namespace, session: Any) -> int:
    idle = _IdleInterrupts()
    last_log: Path | None = None
    while (line := await _read_line(session, idle)) is not None:
        question = line.strip()
        if not question:
            continue
        if question.lower() in _QUIT:
            break
        if _command(question.lower(), session, last_log):
            continue
        _code, summary, log_dir = await run_session_turn(
            target, args, session, question, interactive=True
        )
        if summary is not None:
            last_log = log_dir
    print(f"session saved: {session.directory / 'SESSION_SUMMARY.md'}", flush=True)
    print(f"resume with: massgen --session {session.id}", flush=True)
    return EXIT_OK


def _command(command: str, session: Any, last_log: Path | None) -> bool:
    """Handle a session command (/clear, /table, /help); False for a question."""
    if command == "/clear":
        session.clear()
        print(
            "conversation cleared: the next question starts fresh (no history, empty workspaces)",
            flush=True,
        )
    elif command in ("/table", "r"):
        table = last_log / "coordination_table.txt" if last_log else None
        print(table.read_text() if table and table.exists() else "no finished turn yet")
    elif command in ("/help", "/?"):
        print("/clear  /table  /quit  — anything else is a question for the team")
    else:
        return False
    return True


class _IdleInterrupts:
    """Ctrl-C while waiting for a question: a hint first, a second within 2 s leaves."""

    def __init__(self) -> None:
        self.leave = asyncio.Event()
        self._last = 0.0

    def on_sigint(self) -> None:
        now = time.monotonic()
        if now - self._last < 2.0:
            self.leave.set()
            return
        self._last = now
        print("\n(Ctrl-C again to leave, or /quit)", flush=True)


async def _read_line(session: Any, idle: _IdleInterrupts) -> str | None:
    """The next line typed at the turn prompt; None to leave (Ctrl-D, two Ctrl-C)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, idle.on_sigint)
    asked = asyncio.ensure_future(_ask(f"\n[turn {session.next_number()}] > "))
    left = asyncio.ensure_future(idle.leave.wait())
    await asyncio.wait({asked, left}, return_when=asyncio.FIRST_COMPLETED)
    loop.remove_signal_handler(signal.SIGINT)
    if left.done():
        asked.cancel()
        print()
        return None
    left.cancel()
    line = asked.result()
    if line is None:
        print()
    return line


async def _ask(prompt: str) -> str | None:
    """Read one line in a daemon thread (the event loop keeps serving); None at EOF."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def read() -> None:
        try:
            line: str | None = input(prompt)
        except EOFError:
            line = None
        except Exception:  # noqa: BLE001 - a closed stdin is an end of input too
            line = None
        loop.call_soon_threadsafe(lambda: future.done() or future.set_result(line))

    threading.Thread(target=read, name="massgen-input", daemon=True).start()
    return await future

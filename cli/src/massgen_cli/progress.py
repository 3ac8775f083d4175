"""A "still working" line on stderr while something slow happens (never a silent wait)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """ "Still working" feedback on stderr while something slow happens (never a silent wait).

    On a terminal: one line with a spinner and the elapsed seconds, rewritten in
    place. Otherwise: a line when the note changes and every 10 s.
    """

    _FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, text: str, stream: TextIO | None = None) -> None:
        self.text = text
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        self._started = time.monotonic()
        self._task: asyncio.Future | None = None
        self._said = ""
        self._last_line = 0.0

    def note(self, text: str) -> None:
        """Change what is being waited for."""
        self.text = text
        if not self.tty:
            self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self._started
        if self.tty:
            frame = self._FRAMES[int(elapsed * 10) % len(self._FRAMES)]
            self.out.write(f"\r\x1b[K{frame} {self.text} ({elapsed:.0f}s)")
        elif self.text != self._said or elapsed - self._last_line >= 10:
            self.out.write(f"massgen: {self.text} ({elapsed:.0f}s)\n")
            self._said, self._last_line = self.text, elapsed
        self.out.flush()

    async def _spin(self) -> None:
        while True:
            self._line()
            await asyncio.sleep(0.1 if self.tty else 1.0)

    async def __aenter__(self) -> Progress:
        self._task = asyncio.ensure_future(self._spin())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.tty:
            self.out.write("\r\x1b[K")
            self.out.flush()

"""Word-wrap a growing text for a panel, re-wrapping only its last line.

Greedy wrapping never moves a finished line: appending text changes only the last
line (which may spill into new ones). So each agent's panel keeps its finished lines
and re-wraps just the open one as chunks arrive; a frame then costs the same at
token 10 as at token 10 000, and the lines on screen never reflow. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections import deque

from rich.cells import cell_len

__all__ = ["TailWrap", "wrap_lines"]

_TOKENS = re.compile(r"\n|[^\S\n]+|\S+")
_LEADING_BLANKS = re.compile(r"^[^\S\n]+")


def wrap_lines(text: str, width: int) -> list[str]:
    """Greedy word wrap to ``width`` terminal cells; words longer than a line are
    folded; whitespace at a break is dropped. The last line may end in spaces."""
    lines: list[str] = []
    line, cells = "", 0
    folded = False
    """The last word was folded and its end closed a line: as at a break."""
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token == "\n":
            lines.append(line.rstrip())
            line, cells, folded = "", 0, False
            continue
        if folded and token.isspace():
            continue  # whitespace at a break goes (the incremental wrap drops it too)
        folded = False
        size = cell_len(token)
        if cells + size <= width:
            line, cells = line + token, cells + size
            continue
        if token.isspace():  # a break: the whitespace goes
            lines.append(line.rstrip())
            line, cells = "", 0
            continue
        if line.strip():
            lines.append(line.rstrip())
        line, cells = "", 0
        while size > width:  # fold a word that fits no line
            head, token = _split_cells(token, width)
            lines.append(head)
            size = cell_len(token)
        line, cells = token, size
        folded = not token
    lines.append(line)
    return lines


def _split_cells(word: str, width: int) -> tuple[str, str]:
    """The longest prefix of ``word`` within ``width`` cells (at least one character)."""
    cells = 0
    for index, char in enumerate(word):
        cells += cell_len(char)
        if cells > width:
            return word[: max(1, index)], word[max(1, index) :]
    return word, ""


class TailWrap:
    """The last lines of a text that only grows, wrapped to ``width``.

    ``lines`` equals the tail of ``wrap_lines`` of everything fed so far.

    Args:
        width: line width in terminal cells.
        keep: finished lines kept (the panel shows at most this many).
    """

    def __init__(self, width: int, keep: int) -> None:
        self.width = max(1, width)
        self.keep = max(1, keep)
        self._done: deque[str] = deque(maxlen=self.keep)
        self._open = ""
        """Raw text of the last (unfinished) line."""
        self._last = ""
        """The last line as wrapped."""
        self._soft_break = False
        """The text so far ends in whitespace that made a break (dropped, like any
        whitespace the next word would start with)."""

    def feed(self, text: str) -> None:
        """Append ``text``."""
        if not text:
            return
        if self._soft_break:
            text = _LEADING_BLANKS.sub("", text)
            if not text:
                return
        combined = self._open + text
        lines = wrap_lines(combined, self.width)
        self._done.extend(lines[:-1])
        last = lines[-1]
        # Wrapped lines are verbatim runs of the text: the open line is its suffix.
        self._open = combined[len(combined) - len(last) :] if last else ""
        self._last = last
        self._soft_break = not last and not combined.endswith("\n")

    def lines(self, height: int) -> list[str]:
        """The last ``height`` lines."""
        if height <= 0:
            return []
        done = list(self._done)[max(0, len(self._done) - (height - 1)) :] if height > 1 else []
        return [*done, self._last]

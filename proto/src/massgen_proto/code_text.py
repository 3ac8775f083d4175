"""Python code in answer text, read without running it: code blocks, definitions,
the task's own examples.

Shared by the orchestrator (judging answers and presentations), the workers (which
code of an answer to check) and the gateway (checking it).
"""

from __future__ import annotations

import ast
import doctest
import re

__all__ = [
    "MAX_EXAMPLES_CHARS",
    "TOP_DEF",
    "answer_code",
    "code_blocks",
    "defining_blocks",
    "parses",
    "task_examples",
]

_FENCED = re.compile(r"^[ \t]{0,3}```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL | re.MULTILINE)
"""A fenced block: its opening fence starts a line (a fence named inside a sentence,
"in one ```python block", opens nothing); the closing one may end a line of code."""
TOP_DEF = re.compile(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
"""A top-level function definition (its name is group 1)."""

_CLOSING_QUOTES = re.compile(r"^[ \t]*(?:\"\"\"|\'\'\')", re.MULTILINE)

MAX_EXAMPLES_CHARS = 8000
"""Most characters of examples taken from a task (the rest are left out)."""


def code_blocks(text: str) -> list[str]:
    """Fenced blocks, or the whole text when it has none but defines a function."""
    blocks = [m.group(1) for m in _FENCED.finditer(text)]
    if not blocks and TOP_DEF.search(text):
        blocks = [text]
    return blocks


def defining_blocks(text: str) -> list[str]:
    """The code blocks of a text that define a top-level function."""
    return [b for b in code_blocks(text) if TOP_DEF.search(b)]


def parses(code: str) -> bool:
    """Whether ``code`` is valid Python (parsed only: nothing runs)."""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def answer_code(text: str) -> str:
    """The code of an answer to check against the task's examples: its blocks that
    define functions and parse, joined ("" when it has none)."""
    return "\n\n".join(b for b in defining_blocks(text) if parses(b))


def _docstrings(task: str) -> list[str]:
    """The docstrings of the task's code (where its examples are), or the task's text
    itself when its code does not parse."""
    found: list[str] = []
    for block in defining_blocks(task) or [task]:
        try:
            tree = ast.parse(block)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            found.append(block)
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    found.append(doc)
    return found


def _render(example: doctest.Example) -> str:
    lines = example.source.rstrip("\n").split("\n")
    source = "".join(("... " if i else ">>> ") + line + "\n" for i, line in enumerate(lines))
    # Read from raw text (code that does not parse), the output runs on past the end
    # of its docstring: it stops at the closing quotes.
    want = _CLOSING_QUOTES.split(example.want, maxsplit=1)[0]
    return source + want


def task_examples(task: str) -> str:
    """The task's own examples, as doctest source (``>>> call`` then the expected
    output), or "" when the task defines no function or gives no such example.

    Only a task that shows code defining a function counts: its examples (in the
    code's docstrings) say what that function must return, which any answer's code
    can be checked against.
    """
    if not TOP_DEF.search(task):
        return ""
    rendered: list[str] = []
    size = 0
    for doc in _docstrings(task):
        try:
            examples = doctest.DocTestParser().get_examples(doc)
        except ValueError:  # inconsistent indentation: no usable examples there
            continue
        for example in examples:
            text = _render(example)
            if size + len(text) > MAX_EXAMPLES_CHARS:
                return "".join(rendered)
            rendered.append(text)
            size += len(text)
    return "".join(rendered)

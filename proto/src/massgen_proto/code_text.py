"""Python code in answer text, read without running it: code blocks, definitions,
the task's own examples.

Shared by the orchestrator (judging answers and presentations), the workers (which
code of an answer to check) and the gateway (checking it).
"""

from __future__ import annotations

import ast
import doctest
import functools
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
    return source + _expected(example.source, want)


def _expected(source: str, want: str) -> str:
    """What the example must print, as doctest compares it. Task authors write examples
    loosely: ``>>> f(x) == y`` with no output (they mean True), ``"21"`` for the string
    Python prints as ``'21'``, ``None`` for a call that prints nothing."""
    text = want.strip()
    if not text:
        try:
            tree = ast.parse(source.strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return want
        return "True\n" if isinstance(tree, ast.Compare) and len(tree.ops) == 1 else want
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return want
    return _shown(value)


def _shown(value: object) -> str:
    """How doctest shows an expression's value: its repr, nothing for None."""
    return "" if value is None else f"{value!r}\n"


_WRITTEN = re.compile(
    r"^[ \t*\-]*(?P<call>[A-Za-z_]\w*\(.*\))\s*(?:==>|==|=>|->|\u279e|=)\s*(?P<value>.+?)\s*$",
    re.MULTILINE,
)
"""An example written as prose: ``f(1, 2) == 3``, ``f([1]) => [1]``, ``f("a") \u279e True``."""


def _written_examples(doc: str, functions: set[str]) -> list[str]:
    """Examples of a docstring written as ``call <arrow> value``, as doctest source:
    only calls of the task's own functions with literal arguments and a literal value
    (``is_happy(a) => False`` or ``f(1) => true`` are not Python and are left out)."""
    found = []
    for match in _WRITTEN.finditer(doc):
        try:
            call = ast.parse(match["call"], mode="eval").body
            value = ast.literal_eval(match["value"])
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id in functions
                and not call.keywords
            ):
                continue
            for arg in call.args:
                ast.literal_eval(arg)
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
            continue
        found.append(f">>> {match['call']}\n{_shown(value)}")
    return found


def _examples_of(doc: str, functions: set[str]) -> list[str]:
    """A docstring's examples as doctest source: its ``>>>`` lines, else the ones
    written as prose."""
    try:
        examples = doctest.DocTestParser().get_examples(doc)
    except ValueError:  # inconsistent indentation: no usable doctest lines there
        examples = []
    if examples:
        return [_render(example) for example in examples]
    return _written_examples(doc, functions)


@functools.lru_cache(maxsize=256)
def task_examples(task: str) -> str:
    """The task's own examples, as doctest source (``>>> call`` then the expected
    output), or "" when the task defines no function or gives no such example.

    Only a task that shows code defining a function counts: its examples (in the
    code's docstrings, as ``>>>`` lines or as ``f(x) == y`` / ``=>`` / ``->`` lines)
    say what that function must return, which any answer's code can be checked against.
    Cached: the orchestrator asks for every turn of a run.
    """
    functions = set(TOP_DEF.findall(task))
    if not functions:
        return ""
    rendered: list[str] = []
    size = 0
    for doc in _docstrings(task):
        for text in _examples_of(doc, functions):
            if size + len(text) > MAX_EXAMPLES_CHARS:
                return "".join(rendered)
            rendered.append(text)
            size += len(text)
    return "".join(rendered)

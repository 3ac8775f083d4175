"""Python code in answer text, read without running it: code blocks, definitions,
the task's own examples.

Shared by the orchestrator (judging answers and presentations), the workers (which
code of an answer to check) and the gateway (checking it).
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import doctest

__all__ = [
    "MAX_EXAMPLES_CHARS",
    "TOP_DEF",
    "answer_code",
    "code_blocks",
    "defining_blocks",
    "elide_example_runs",
    "elide_task_docstrings",
    "parses",
    "restore_task_docstrings",
    "task_examples",
]

_FENCED = re.compile(r"^[ \t]{0,3}```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL | re.MULTILINE)
"""A fenced block: its opening fence starts a line (a fence named inside a sentence,
"in one ```python block", opens nothing); the closing one may end a line of code."""
TOP_DEF = re.compile(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
"""A top-level function definition (its name is group 1)."""
_ANY_DEF = re.compile(r"^[ \t]*(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
"""A function definition at any depth (its name is group 1)."""

_CLOSING_QUOTES = re.compile(r"^[ \t]*(?:\"\"\"|\'\'\')", re.MULTILINE)

_TRIPLE_QUOTED = re.compile(r'(?P<q>"""|\'\'\')(?P<body>.*?)(?P=q)', re.DOTALL)
ELIDED_DOCSTRING = "(the task's docstring)"
"""What a docstring copied from the task is shown as (``elide_task_docstrings``)."""
_MIN_ELIDED_CHARS = 40

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


def _parsed(code: str) -> ast.Module | None:
    """``code``'s syntax tree, or None when it is not valid Python (nothing runs)."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def parses(code: str) -> bool:
    """Whether ``code`` is valid Python (parsed only: nothing runs)."""
    return _parsed(code) is not None


def answer_code(text: str) -> str:
    """The code of an answer to check against the task's examples: its blocks that
    define functions and parse, joined ("" when it has none)."""
    return "\n\n".join(b for b in defining_blocks(text) if parses(b))


def elide_task_docstrings(text: str, task: str) -> str:
    """``text`` with each triple-quoted string that only repeats the task's own text
    (whitespace aside, at least ``_MIN_ELIDED_CHARS`` long) shown as
    ``ELIDED_DOCSTRING``: agents copy the task's docstring into every answer, and
    reading it again under each answer costs a small local model seconds per turn."""
    if '"""' not in text and "'''" not in text:
        return text
    seen = " ".join(task.split())

    def shorten(match: re.Match[str]) -> str:
        body = " ".join(match["body"].split())
        if len(body) < _MIN_ELIDED_CHARS or body not in seen:
            return match[0]
        return f"{match['q']}{ELIDED_DOCSTRING}{match['q']}"

    return _TRIPLE_QUOTED.sub(shorten, text)


_RUNS_NOTE = "# ({n} lines running examples, not shown)"
"""What an answer's own example runs after its definitions are shown as (``elide_example_runs``)."""
_DEFINES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)


def elide_example_runs(text: str) -> str:
    """``text`` with the statements after the last definition of each code block that
    defines a function shown as one comment, when they only run code (calls, prints,
    asserts, assignments, an ``if __name__ == "__main__":`` block): agents add runs
    of the task's examples under their function, which the check under the answer
    already reports, and every voter would read them again. A block that does not
    parse, or defines something after its runs, is left whole."""

    def shorten(match: re.Match[str]) -> str:
        code = match[1]
        tree = _parsed(code) if TOP_DEF.search(code) else None
        if tree is None:
            return match[0]
        body = tree.body
        last = max((i for i, node in enumerate(body) if isinstance(node, _DEFINES)), default=-1)
        runs = body[last + 1 :]
        if last < 0 or not runs or not all(_only_runs(node) for node in runs):
            return match[0]
        lines = code.split("\n")
        start = runs[0].lineno - 1
        while start > 0 and lines[start - 1].lstrip().startswith("#"):
            start -= 1  # the comment that introduces them ("# Test cases")
        hidden = [line for line in lines[start:] if line.strip()]
        if len(hidden) < 2:
            return match[0]
        kept = "\n".join(lines[:start]).rstrip("\n")
        shown = f"{kept}\n\n{_RUNS_NOTE.format(n=len(hidden))}\n"
        text = match.string
        return text[match.start(0) : match.start(1)] + shown + text[match.end(1) : match.end(0)]

    return _FENCED.sub(shorten, text)


def _only_runs(node: ast.stmt) -> bool:
    """A top-level statement that only runs code (no definition, no import)."""
    if isinstance(node, ast.Expr | ast.Assert | ast.Assign | ast.AnnAssign | ast.AugAssign):
        return True
    if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
        definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        return not any(isinstance(n, definitions) for n in ast.walk(node))
    return False


@dataclass(frozen=True, slots=True)
class _Doc:
    """A docstring of the task's code, and the function it documents (if any)."""

    text: str
    function: str | None = None
    params: tuple[str, ...] = ()
    """The function's parameters, in order, when it takes only plain positional ones."""


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, ...]:
    args = node.args
    if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        return ()
    return tuple(a.arg for a in args.args if a.arg not in ("self", "cls"))


def _docstrings(task: str) -> list[_Doc]:
    """The docstrings of the task's code (where its examples are), or the task's text
    itself when its code does not parse."""
    found: list[_Doc] = []
    for block in defining_blocks(task) or [task]:
        tree = _parsed(block)
        if tree is None:
            found.append(_Doc(block))
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node, clean=True)
                if not doc:
                    continue
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.append(_Doc(doc, node.name, _params(node)))
                else:
                    found.append(_Doc(doc))
    return found


_ELIDED_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<q>\"\"\"|\'\'\')" + re.escape(ELIDED_DOCSTRING) + r"(?P=q)[ \t]*\n?",
    re.MULTILINE,
)


def restore_task_docstrings(text: str, task: str) -> str:
    """Undo ``elide_task_docstrings`` in text an agent wrote from what it was shown: a
    line that is only the marker becomes the task's docstring of the function it is in
    (the nearest ``def`` above it), or goes when the task documents no such function."""
    if ELIDED_DOCSTRING not in text:
        return text
    docs = {d.function: d.text for d in _docstrings(task) if d.function}

    def restore(match: re.Match[str]) -> str:
        defs = _ANY_DEF.findall(text, 0, match.start())
        doc = docs.get(defs[-1]) if defs else None
        if doc is None:
            return ""
        indent, quotes = match["indent"], match["q"]
        lines = doc.split("\n")
        body = "\n".join(f"{indent}{line}" if line.strip() else "" for line in lines[1:])
        closing = f"\n{body}\n{indent}{quotes}" if len(lines) > 1 else quotes
        return f"{indent}{quotes}{lines[0]}{closing}\n"

    return _ELIDED_LINE.sub(restore, text)


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
    r"^[ \t*\-]*(?:for\s+|assert\s+)?(?P<call>[A-Za-z_]\w*\(.*\))\s*"
    r"(?:==>|==|=>|->|\u279e|=|#?\s*returns|should\s+return)\s*(?P<value>.+?)\s*$",
    re.MULTILINE,
)
"""An example written as prose: ``f(1, 2) == 3``, ``f([1]) => [1]``, ``f("a") \u279e True``,
``f(2) returns 4``, ``f(2) should return 4.``, ``for f(2) == 4``."""
_FOR_NAMED = re.compile(
    r"^[ \t*\-]*for\s+(?P<args>[A-Za-z_]\w*\s*=.+?),?\s+the\s+(?:output|result)\s+"
    r"should\s+be\s+(?P<value>.+?)\s*$",
    re.MULTILINE | re.IGNORECASE,
)
"""``For lst = [1, 2] the output should be 3`` (the arguments named as parameters)."""
_INPUT_OUTPUT = re.compile(
    r"^[ \t]*Input:[ \t]*(?P<args>\S.*?)[ \t]*\n[ \t]*Output:[ \t]*(?P<value>\S.*?)[ \t]*$",
    re.MULTILINE,
)
"""``Input: arr = [1, 2], k = 1`` or ``Input: [1, 2]``, then ``Output: [2]`` on the next line."""


def _literal(text: str) -> tuple[bool, object]:
    """The value an example's prose gives (ok, value): a Python literal, allowing a
    sentence's final period, a trailing ``# comment`` and ``true``/``false``."""
    candidates = [text.rstrip("."), text]  # "should return 16." means 16, not 16.0
    if "#" in text:
        candidates.append(text.split("#", 1)[0])
    for candidate in candidates:
        candidate = candidate.strip()
        if candidate in ("true", "false"):
            return True, candidate == "true"
        try:
            return True, ast.literal_eval(candidate)
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
            continue
    return False, None


def _literal_args(values: list[ast.expr]) -> bool:
    try:
        for value in values:
            ast.literal_eval(value)
    except (ValueError, TypeError, RecursionError, MemoryError):
        return False
    return True


def _written_examples(doc: str, functions: set[str]) -> list[tuple[int, str]]:
    """Examples of a docstring written as ``call <arrow> value``, as doctest source
    with where they start: only calls of the task's own functions with literal
    arguments and a literal value (``is_happy(a) => False`` is not Python: left out)."""
    found = []
    for match in _WRITTEN.finditer(doc):
        ok, value = _literal(match["value"])
        try:
            call = ast.parse(match["call"], mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if not (
            ok
            and isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id in functions
            and not call.keywords
            and _literal_args(call.args)
        ):
            continue
        found.append((match.start(), f">>> {match['call']}\n{_shown(value)}"))
    return found


def _bound_call(doc: _Doc, args: str) -> str | None:
    """``args`` as written in prose (``lst = [1], k = 2``, or bare values) as a call of
    the docstring's function, its arguments in the order of its parameters."""
    if doc.function is None or not doc.params:
        return None
    try:
        call = ast.parse(f"_({args})", mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(call, ast.Call):
        return None
    if call.keywords and not call.args:
        named = {k.arg: k.value for k in call.keywords}
        if set(named) != set(doc.params) or len(named) != len(call.keywords):
            return None
        values = [named[p] for p in doc.params]
    elif call.args and not call.keywords and len(call.args) == len(doc.params):
        values = list(call.args)
    else:
        return None
    if not _literal_args(values):
        return None
    return f"{doc.function}({', '.join(ast.unparse(v) for v in values)})"


def _named_examples(doc: _Doc) -> list[tuple[int, str]]:
    """Examples giving the arguments by the parameters' names (``For x = 1 the output
    should be 2``, ``Input: x = 1`` / ``Output: 2``), as calls of the function whose
    docstring it is."""
    found = []
    for pattern in (_FOR_NAMED, _INPUT_OUTPUT):
        for match in pattern.finditer(doc.text):
            ok, value = _literal(match["value"])
            call = _bound_call(doc, match["args"]) if ok else None
            if call is not None:
                found.append((match.start(), f">>> {call}\n{_shown(value)}"))
    return found


def _examples_of(doc: _Doc, functions: set[str]) -> list[str]:
    """A docstring's examples as doctest source: its ``>>>`` lines, else the ones
    written as prose, in the order they are written."""
    import doctest  # not at import time: it costs a CLI command ~20 ms for nothing

    try:
        examples = doctest.DocTestParser().get_examples(doc.text)
    except ValueError:  # inconsistent indentation: no usable doctest lines there
        examples = []
    if examples:
        return [_render(example) for example in examples]
    written = _written_examples(doc.text, functions) + _named_examples(doc)
    return [text for _, text in sorted(written)]


@functools.lru_cache(maxsize=256)
def task_examples(task: str) -> str:
    """The task's own examples, as doctest source (``>>> call`` then the expected
    output), or "" when the task defines no function or gives no such example.

    Only a task that shows code defining a function counts: its examples (in the
    code's docstrings, as ``>>>`` lines or written as prose: ``f(x) == y``, ``=>``,
    ``->``, ``returns``, ``For x = 1 the output should be 2``, ``Input:``/``Output:``
    lines) say what that function must return, which any answer's code can be checked
    against.
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

"""What to grade in an answer: its code, or its final short answer.

Code: the fenced block that defines the entry point (else the longest Python block,
else the raw text from its first ``def``/``import``); earlier blocks that only define
helpers are kept; top-level example calls, asserts and ``if __name__ == "__main__":``
blocks are dropped (they are usage, not the solution). HumanEval's convention: an
answer with a full ``def entry_point`` is run after the prompt (the prompt's imports and
helpers stay available, the answer's definition wins); an answer without one is a body
that completes the prompt.

Text: normalised (case, punctuation, articles ``a an the``, spaces) and compared with the
expected answer(s), trying the whole reply, the text after its last ``Answer:``, its last
``\\boxed{}``, its last bold span and its last line.
"""

from __future__ import annotations

import ast
import re
import string
import textwrap

__all__ = [
    "code_blocks",
    "extract_code",
    "humaneval_program",
    "match_text",
    "normalise",
]

_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([\w+#.-]*)[^\n]*\n", re.M)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "pycon"}
_CODE_START = re.compile(r"^(def |async def |class |import |from \S+ import |@)", re.M)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block, in order; an unclosed last fence (a
    reply cut at its token limit) runs to the end of the text."""
    blocks: list[tuple[str, str]] = []
    position = 0
    while True:
        opening = _FENCE.search(text, position)
        if opening is None:
            return blocks
        fence, language = opening.group(1), opening.group(2).lower()
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.M)
        end = closing.search(text, opening.end())
        if end is None:
            blocks.append((language, text[opening.end() :]))
            return blocks
        blocks.append((language, text[opening.end() : end.start()]))
        position = end.end()


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return bool(re.search(rf"^def\s+{re.escape(name)}\s*\(", code, re.M))
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        for node in tree.body
    )


def _only_definitions(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    return bool(tree.body) and all(isinstance(node, kinds) for node in tree.body)


def _from_raw(text: str) -> str:
    """Code in a reply without fences: the text, or from its first code line on, cut at
    the end until it parses."""
    if _parses(text) and _CODE_START.search(text):
        return text
    start = _CODE_START.search(text)
    if start is None:
        return text
    lines = text[start.start() :].splitlines()
    while lines:
        candidate = "\n".join(lines)
        if _parses(candidate):
            return candidate + "\n"
        lines.pop()
    return text[start.start() :]


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _drop_usage(code: str) -> str:
    """Remove top-level example calls, asserts and the ``__main__`` block."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    lines = code.splitlines(keepends=True)
    drop: list[tuple[int, int]] = []
    for index, node in enumerate(tree.body):
        docstring = (
            index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        )
        usage = (isinstance(node, ast.Expr) and not docstring) or isinstance(node, ast.Assert)
        if usage or _is_main_guard(node):
            drop.append((node.lineno, node.end_lineno or node.lineno))
    if not drop:
        return code
    keep = [
        line
        for number, line in enumerate(lines, start=1)
        if not any(first <= number <= last for first, last in drop)
    ]
    return "".join(keep)


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The Python code of an answer (see the module docstring)."""
    blocks = [body for language, body in code_blocks(text) if language in _PYTHON_TAGS]
    if not blocks:
        blocks = [body for _language, body in code_blocks(text)]
    if blocks:
        chosen = None
        if entry_point:
            defining = [i for i, body in enumerate(blocks) if _defines(body, entry_point)]
            chosen = defining[-1] if defining else None
        if chosen is None:
            chosen = max(range(len(blocks)), key=lambda i: len(blocks[i]))
        helpers = [body for body in blocks[:chosen] if _only_definitions(body)]
        code = "\n\n".join([*helpers, blocks[chosen]])
    else:
        code = _from_raw(text)
    return _drop_usage(textwrap.dedent(code)).strip("\n") + "\n"


def humaneval_program(prompt: str, answer: str, entry_point: str) -> str:
    """The program to run for a HumanEval answer: prompt + full function, or prompt + body."""
    code = extract_code(answer, entry_point)
    if _defines(code, entry_point):
        return f"{prompt.rstrip()}\n\n\n{code}"
    body = code.rstrip("\n")
    first = next((line for line in body.splitlines() if line.strip()), "")
    if first and not first.startswith((" ", "\t")):
        body = textwrap.indent(body, "    ")
    return f"{prompt}{body}\n"


# -- short text answers --------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ANSWER_MARK = re.compile(r"(?:final\s+answer|answer)\s*(?:is)?\s*[:：]\s*(.+)", re.I)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def normalise(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _readings(reply: str) -> list[str]:
    readings = [reply]
    marks = _ANSWER_MARK.findall(reply)
    if marks:
        readings.append(marks[-1])
    boxed = _BOXED.findall(reply)
    if boxed:
        readings.append(boxed[-1])
    bold = _BOLD.findall(reply)
    if bold:
        readings.append(bold[-1])
    lines = [line for line in reply.splitlines() if line.strip()]
    if lines:
        readings.append(lines[-1])
    return readings


def match_text(
    reply: str, answers: tuple[str, ...] = (), answer_regex: str | None = None
) -> tuple[bool, str]:
    """(passed, reason): ``answer_regex`` searched in the whole reply, else any expected
    answer equal to a normalised reading of the reply."""
    if answer_regex is not None:
        found = re.search(answer_regex, reply)
        return (True, "passed") if found else (False, f"no match for /{answer_regex}/")
    expected = {normalise(a) for a in answers}
    for reading in _readings(reply):
        if normalise(reading) in expected:
            return True, "passed"
    last = _readings(reply)[-1] if reply.strip() else ""
    return False, f"expected {' | '.join(answers)!r}, got {last.strip()[:120]!r}"

"""Judging workflow calls and presentations: pure checks of model output.

Rejection texts are written for the model: they say what was wrong and what it may do,
and they name agents by label only. ``presentation_problem`` checks a final
presentation against the winning answer it was made from.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from massgen_proto import messages as msg
from massgen_proto.code_text import TOP_DEF, code_blocks, defining_blocks, parses, task_examples
from massgen_proto.messages import CodeCheck

from . import prompts

__all__ = [
    "NOVELTY_LIMITS",
    "AnswerCall",
    "Rejection",
    "SameAnswer",
    "VoteCall",
    "agreement",
    "best_checked",
    "check_problem",
    "judge",
    "normalise",
    "presentation_problem",
    "similarity",
    "unchecked_change",
    "unsound",
]

NOVELTY_LIMITS: dict[str, float | None] = {"lenient": None, "balanced": 0.70, "strict": 0.50}
"""Highest word-set Jaccard similarity to a current answer that a new answer may have."""

_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


# -- judging workflow calls (pure helpers) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """A workflow submission that cannot be accepted; ``message`` is for the model."""

    tool: str | None
    message: str


@dataclass(frozen=True, slots=True)
class AnswerCall:
    """A well-formed, novel ``new_answer``."""

    content: str


@dataclass(frozen=True, slots=True)
class SameAnswer:
    """A ``new_answer`` that repeats ``label``'s current answer (identical after
    normalisation, or above the novelty limit): it means a vote for ``label``."""

    label: str
    content: str
    identical: bool
    score: float
    """Word-set similarity to ``label``'s answer (1.0 when identical)."""


@dataclass(frozen=True, slots=True)
class VoteCall:
    """A well-formed ``vote`` for a label that has an answer."""

    target: str
    reason: str


def normalise(text: str) -> str:
    """Collapse whitespace runs, strip, and casefold (for the identical-answer check)."""
    return _WHITESPACE.sub(" ", text).strip().casefold()


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the lowercased word sets of two texts (1.0 when both are empty)."""
    words_a = set(_WORD.findall(a.casefold()))
    words_b = set(_WORD.findall(b.casefold()))
    union = words_a | words_b
    return len(words_a & words_b) / len(union) if union else 1.0


def _one_of(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "(none)"


def _clean_label(value: str) -> str:
    # Models often echo the tag form of the answers block or change case.
    return value.strip().strip("<>").strip().lower()


def judge(
    calls: Sequence[msg.WorkflowCall],
    *,
    offered: Sequence[str],
    latest: Mapping[str, str],
    novelty: str = "lenient",
    answer_cap: int | None = None,
) -> Rejection | AnswerCall | SameAnswer | VoteCall:
    """Judge the workflow calls of one model response.

    Args:
        calls: the workflow calls the model made (possibly none).
        offered: names of the workflow tools offered in the turn.
        latest: label -> latest answer of every agent that has one, in config order.
        novelty: ``answer_novelty_requirement`` (``lenient``, ``balanced``, ``strict``).
        answer_cap: ``max_new_answers_per_agent``, for the text when new_answer is refused.

    Returns:
        A ``Rejection`` whose message tells the model what to do instead, the accepted
        call, or ``SameAnswer`` for an answer that repeats a current one.
    """
    tools = _one_of(offered)
    if not calls:
        return Rejection(
            None,
            f"You did not call a workflow tool. End your response with exactly one call "
            f"to one of: {tools}.",
        )
    if len(calls) > 1:
        names = ", ".join(c.name for c in calls)
        return Rejection(
            calls[0].name,
            f"You made {len(calls)} workflow calls ({names}) in one response; make exactly "
            f"one call to one of: {tools}.",
        )
    call = calls[0]
    if call.name not in offered:
        return Rejection(call.name, _not_offered(call.name, offered, answer_cap))
    if call.name == prompts.NEW_ANSWER:
        return _judge_new_answer(call, latest, novelty)
    return _judge_vote(call, latest)


def _judge_new_answer(
    call: msg.WorkflowCall, latest: Mapping[str, str], novelty: str
) -> Rejection | AnswerCall | SameAnswer:
    args = call.arguments
    content = args.get("content") if isinstance(args, dict) else None
    if not isinstance(content, str) or not content.strip():
        return Rejection(
            call.name,
            "new_answer got no answer: write your complete answer as text before the call, "
            'or give it as {"content": "<your complete answer>"}.',
        )
    return _judge_answer(content, latest, novelty)


def _judge_vote(call: msg.WorkflowCall, latest: Mapping[str, str]) -> Rejection | VoteCall:
    args = call.arguments
    labels = list(latest)
    target = args.get("agent_id") if isinstance(args, dict) else None
    if not isinstance(target, str) or not target.strip():
        return Rejection(
            call.name,
            'vote expects a JSON object {"agent_id": "<label>", "reason": "<why>"} with '
            f"agent_id one of: {_one_of(labels)}.",
        )
    label = _clean_label(target)
    if label not in latest:
        # The bad value is not echoed: it may be a real agent id the model guessed.
        return Rejection(
            call.name,
            f"agent_id must be the label of an agent with a current answer: one of "
            f"{_one_of(labels)}.",
        )
    reason = args.get("reason") if isinstance(args, dict) else None
    return VoteCall(label, reason.strip() if isinstance(reason, str) else "")


def _not_offered(name: str, offered: Sequence[str], answer_cap: int | None) -> str:
    if name == prompts.NEW_ANSWER and answer_cap is not None:
        return (
            f"new_answer is not available: you have reached the limit of {answer_cap} "
            f"answer(s). Call one of: {_one_of(offered)}."
        )
    if name == prompts.VOTE:
        return (
            "vote is not available: no answer exists to vote for yet. "
            f"Call one of: {_one_of(offered)}."
        )
    return f"{name!r} is not a workflow tool here. Call exactly one of: {_one_of(offered)}."


def repeats(content: str, existing: str, novelty: str) -> tuple[bool, float] | None:
    """Does ``content`` repeat ``existing``? ``(identical, score)`` if so, else None."""
    if normalise(existing) == normalise(content):
        return True, 1.0
    limit = NOVELTY_LIMITS.get(novelty)
    if limit is not None:
        score = similarity(content, existing)
        if score > limit:
            return False, score
    return None


def _judge_answer(content: str, latest: Mapping[str, str], novelty: str) -> AnswerCall | SameAnswer:
    best: SameAnswer | None = None
    for label, existing in latest.items():
        found = repeats(content, existing, novelty)
        if found is None:
            continue
        identical, score = found
        if identical:
            return SameAnswer(label, content, True, 1.0)
        if best is None or score > best.score:
            best = SameAnswer(label, content, False, score)
    return best or AnswerCall(content)


# -- the final presentation ----------------------------------------------------------

SHORTEST_SHARE = 0.4
"""A presentation shorter than this share of the winning answer lost its detail..."""
SHORT_FLOOR = 80
"""...when the winning answer has at least this many characters."""


def presentation_problem(content: str, answer: str) -> str | None:
    """Why a final presentation may not replace the winning answer, or None if it may.

    The presentation is the winner rewriting its answer for the user; a small model can
    lose what made the answer win. It is refused when it is empty, or, when the answer is
    Python code: far shorter than the answer (under ``SHORTEST_SHARE`` of it, for answers
    of ``SHORT_FLOOR`` characters or more), no longer defining the answer's top-level
    functions, or no longer parsing where the answer's code did. A prose answer may be
    said shorter.

    Args:
        content: the presentation's text.
        answer: the winning answer it was made from.
    """
    text, base = content.strip(), answer.strip()
    if not text:
        return "empty presentation"
    answer_blocks = code_blocks(base)
    names = list(dict.fromkeys(n for b in answer_blocks for n in TOP_DEF.findall(b)))
    if not names:
        return None  # prose: a presenter may well say it shorter
    if len(base) >= SHORT_FLOOR and len(text) < SHORTEST_SHARE * len(base):
        return f"presentation far shorter than the answer ({len(text)} of {len(base)} characters)"
    blocks = code_blocks(text)
    defined = {n for b in blocks for n in TOP_DEF.findall(b)}
    lost = [n for n in names if n not in defined]
    if lost:
        return f"presentation no longer defines {', '.join(lost)}"
    answer_parsed = [parses(b) for b in answer_blocks if TOP_DEF.search(b)]
    if any(answer_parsed):
        # Held to what the answer's code did: where all of it parsed, every block must (a
        # presentation that repeats the code and is cut off by its token limit in the
        # second copy shows the user code that does not run); else one must.
        held = all if all(answer_parsed) else any
        if not held(parses(b) for b in blocks if TOP_DEF.search(b)):
            return "presentation code no longer parses as Python"
    dropped = _dropped_imports(answer_blocks, blocks)
    if dropped:
        return f"presentation uses {', '.join(dropped)} but no longer imports it"
    return None


def _trees(blocks: Sequence[str]) -> list[ast.Module]:
    trees = []
    for block in blocks:
        try:
            trees.append(ast.parse(block))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return trees


def _bound_at_top(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level (imports, definitions, assignments)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
    return names


def _dropped_imports(answer_blocks: Sequence[str], blocks: Sequence[str]) -> list[str]:
    """Names the answer's code imports that the presentation's code uses without binding
    them (``from typing import List`` left out: the code then fails with a NameError)."""
    imported: set[str] = set()
    for tree in _trees(answer_blocks):
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
    if not imported:
        return []
    trees = _trees(blocks)
    bound = set().union(*(_bound_at_top(t) for t in trees)) if trees else set()
    used = {n.id for t in trees for n in ast.walk(t) if isinstance(n, ast.Name)}
    return sorted(n for n in imported if n in used and n not in bound and n != "*")


def check_problem(presented: CodeCheck | None, answer: CodeCheck | None) -> str | None:
    """Why a presentation whose code was run against the task's examples may not replace
    the answer it was made from: it passes fewer of them (None: it may, or either was
    not checked)."""
    if presented is None or answer is None or presented.passed >= answer.passed:
        return None
    return (
        f"the presentation's code passes {presented.passed} of the task's {answer.total} "
        f"examples, the answer's {answer.passed}"
    )


def unchecked_change(
    content: str, answer: str, task: str, presented: CodeCheck | None = None
) -> str | None:
    """Why a presentation may not replace the answer it was made from: it changes what
    the answer's code does (its definitions, docstrings and comments aside) and nothing
    confirms the change: the task gives no examples to run it against
    (``code_text.task_examples``), or the presentation's code passes none of them.

    Where its code passes some of the task's examples, it may not pass fewer than the
    answer's (``check_problem``). Otherwise a presenter's rewrite is checked by nothing,
    while the answer was chosen by the votes: the answer is kept. (In the 41-problem
    evals that led to this rule, such rewrites broke code that passed: a loop taken from
    a wrong answer, a check that raised, numpy used without an import where the answer
    passed none of the task's examples because the task's own examples are wrong; see
    docs/coordination.md.) A presentation whose check could not be had is not held to
    this: missing evidence is not a failure.
    """
    if not defining_blocks(answer) or not defining_blocks(content):
        return None
    if _substance(content) == _substance(answer):
        return None
    if not task_examples(task):
        return (
            "the presentation changes the answer's code, and the task gives no examples to "
            "check that"
        )
    if presented is not None and presented.total and presented.passed == 0:
        return (
            "the presentation changes the answer's code, and its code passes none of the "
            "task's examples"
        )
    return None


def best_checked(
    pool: Sequence[str],
    checks: Mapping[str, CodeCheck | None],
    unverified: Collection[str] = (),
) -> list[str]:
    """The labels of ``pool`` that may win by their checks: those whose code passes the
    most of the task's examples, when any passes one; otherwise all of ``pool``.

    Passing the task's own examples is evidence votes cannot outweigh: a small model's
    votes follow the order answers are shown in more than what they do. An answer in
    ``unverified`` has code that went unchecked (its check could not be had: the gateway
    was down or still starting): missing evidence is not a failure, so it stays in.
    """
    best = max((c.passed for c in checks.values() if c is not None), default=0)
    if best == 0:
        return list(pool)
    return [
        label
        for label in pool
        if ((c := checks.get(label)) is not None and c.passed == best)
        or (c is None and label in unverified)
    ]


# -- standing of an answer when votes tie ----------------------------------------------

_TOKEN = re.compile(r"\w+|[^\w\s]")


def unsound(answer: str, task: str) -> str | None:
    """Why an answer's code cannot be right, judged without running it; None if it may be.

    Only answers that give code defining functions are judged: such an answer is unsound
    when none of its defining code blocks parses as Python, or when the task's own code
    declares functions and the answer's code defines none of them (it answered something
    else). Prose answers are never unsound.

    Args:
        answer: the answer's text.
        task: the task (the user's question), whose code blocks may declare functions.
    """
    blocks = defining_blocks(answer)
    if not blocks:
        return None
    if not any(parses(b) for b in blocks):
        return "its code does not parse as Python"
    wanted = {n for b in defining_blocks(task) for n in TOP_DEF.findall(b)}
    defined = {n for b in blocks for n in TOP_DEF.findall(b)}
    if wanted and not wanted & defined:
        return f"its code defines none of the task's functions ({', '.join(sorted(wanted))})"
    return None


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                body[:] = body[1:] or [ast.Pass()]


def _substance(text: str) -> str:
    """What two answers are compared on: their definitions, without docstrings, comments
    or example calls when the answer is parseable code; else the text itself."""
    kept = []
    for block in defining_blocks(text):
        try:
            tree = ast.parse(block)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            kept.append(block)
            continue
        tree.body = [
            n
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
        _strip_docstrings(tree)
        kept.append(ast.unparse(tree))
    return "\n".join(kept) if kept else text


def _shingles(text: str) -> set[tuple[str, str]]:
    tokens = _TOKEN.findall(text.casefold())
    return set(zip(tokens, tokens[1:], strict=False)) if len(tokens) > 1 else {(text, "")}


def agreement(answer: str, others: Sequence[str]) -> float:
    """How much an answer agrees with the other answers: the mean Jaccard similarity of
    token pairs (for code: of the definitions without docstrings, comments and example
    calls), 0.0 with no other answer. Independent answers that agree are more often
    right than one that stands alone, so a tie between equally voted answers goes to
    the one the others agree with most."""
    if not others:
        return 0.0
    mine = _shingles(_substance(answer))
    total = 0.0
    for other in others:
        theirs = _shingles(_substance(other))
        union = mine | theirs
        total += len(mine & theirs) / len(union) if union else 1.0
    return total / len(others)

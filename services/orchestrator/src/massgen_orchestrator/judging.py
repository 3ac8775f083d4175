"""Judging workflow calls: pure checks of one model response's new_answer / vote calls.

Rejection texts are written for the model: they say what was wrong and what it may do,
and they name agents by label only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from massgen_proto import messages as msg

from . import prompts

__all__ = [
    "NOVELTY_LIMITS",
    "AnswerCall",
    "Rejection",
    "SameAnswer",
    "VoteCall",
    "judge",
    "normalise",
    "similarity",
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
    args = call.arguments
    if call.name == prompts.NEW_ANSWER:
        content = args.get("content") if isinstance(args, dict) else None
        if not isinstance(content, str) or not content.strip():
            return Rejection(
                call.name,
                'new_answer expects a JSON object {"content": "<your complete answer>"} '
                "with non-empty text.",
            )
        return _judge_answer(content, latest, novelty)
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

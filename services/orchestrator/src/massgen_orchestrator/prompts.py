"""What agents read: coordination and presentation prompts, and the workflow tools.

Pure functions of plain values. Prompts are short on purpose (local models read
about a hundred tokens a second) and only ever name agents by label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from massgen_proto.messages import ChatMessage

__all__ = [
    "NEW_ANSWER",
    "VOTE",
    "answers_block",
    "coordination_messages",
    "presentation_messages",
    "workflow_tools",
]

NEW_ANSWER = "new_answer"
VOTE = "vote"

_SENSITIVITY: dict[str, str] = {
    "lenient": "Vote for an answer if it is correct and reasonably complete.",
    "balanced": (
        "Vote only for an answer that is correct, complete and clear; otherwise improve it."
    ),
    "strict": (
        "Be demanding: vote only for an answer that is correct, complete and leaves nothing "
        "worth adding; otherwise write a better one."
    ),
}


MIN_SHARE = 500
"""The fewest characters of an answer a prompt shows, however many answers there are."""


def answers_block(
    answers: Mapping[str, str], budget: int | None = None, keep: str | None = None
) -> str:
    """Render the CURRENT ANSWERS block: each latest answer under its label.

    Args:
        answers: label -> latest answer text, in config order.
        budget: characters all answers together may take (None: no bound). Each answer
            gets an equal share (at least ``MIN_SHARE``); a longer one is cut with a note,
            so a prompt grows with the team's size, never with its answers' length.
        keep: a label whose answer is never cut (the presenter's own).
    """
    if not answers:
        return "CURRENT ANSWERS:\n(none yet)"
    share = None
    if budget is not None:
        kept = len(answers[keep].strip()) if keep in answers else 0
        others = len(answers) - (1 if keep in answers else 0)
        share = max(MIN_SHARE, (budget - kept) // max(1, others))
    parts = []
    for label, text in answers.items():
        body = text.strip()
        if share is not None and label != keep and len(body) > share:
            cut = len(body) - share
            body = f"{body[:share]}\n[... {cut} more characters of {label}'s answer not shown]"
        parts.append(f"<{label}>\n{body}\n</{label}>")
    return "CURRENT ANSWERS:\n" + "\n".join(parts)


def _history(history: Sequence[ChatMessage]) -> list[ChatMessage]:
    # Earlier turns of a session are context; their system messages would compete
    # with ours, so only the user/assistant exchange is kept.
    return [m for m in history if m.role != "system"]


def _system(system_message: str | None, instruction: str) -> ChatMessage:
    text = f"{system_message.strip()}\n\n{instruction}" if system_message else instruction
    return ChatMessage(role="system", content=text)


def coordination_messages(
    *,
    task: str,
    answers: Mapping[str, str],
    system_message: str | None = None,
    history: Sequence[ChatMessage] = (),
    voting_sensitivity: str = "lenient",
    can_answer: bool = True,
    remaining_seconds: float | None = None,
    answers_budget: int | None = None,
) -> list[ChatMessage]:
    """Build the messages of a coordination turn.

    Args:
        task: the user's question.
        answers: label -> latest answer, in config order (empty when none exist).
        system_message: the agent's own system message from the config, if any.
        history: earlier turns of a multi-turn session.
        voting_sensitivity: ``lenient``, ``balanced`` or ``strict``.
        can_answer: False when the agent is at its answer cap (vote only).
        remaining_seconds: time left in the run, shown rounded.
        answers_budget: characters the answers block may take (see ``answers_block``).

    Returns:
        system message, the history, then the user message with the task and answers.
    """
    lines = ["You are one of several agents answering the same task together."]
    if not answers:
        lines.append("No answers exist yet: write a complete answer and submit it with new_answer.")
    elif not can_answer:
        lines.append(
            "You have used all your answers: vote with the vote tool for the best current answer."
        )
    else:
        lines.append(
            "If a current answer is correct and complete, vote for the best one with vote; "
            "otherwise submit a better, complete answer with new_answer."
        )
        lines.append(_SENSITIVITY.get(voting_sensitivity, _SENSITIVITY["lenient"]))
    lines.append("You may use other tools first, then end with exactly one workflow tool call.")
    if remaining_seconds is not None:
        lines.append(f"Time left: about {max(0, round(remaining_seconds))} seconds.")
    user = f"TASK:\n{task.strip()}\n\n{answers_block(answers, answers_budget)}"
    return [
        _system(system_message, " ".join(lines)),
        *_history(history),
        ChatMessage(role="user", content=user),
    ]


def presentation_messages(
    *,
    task: str,
    answers: Mapping[str, str],
    winner_label: str,
    vote_reasons: Sequence[str] = (),
    system_message: str | None = None,
    history: Sequence[ChatMessage] = (),
    answers_budget: int | None = None,
) -> list[ChatMessage]:
    """Build the messages of the winner's final presentation turn.

    Args:
        task: the user's question.
        answers: label -> latest answer, in config order.
        winner_label: the presenting agent's label.
        vote_reasons: reasons of the votes the winner received.
        system_message: the winner's own system message, if any.
        history: earlier turns of a multi-turn session.
        answers_budget: characters the answers block may take; the winner's own answer
            is always shown whole, the others share the rest.
    """
    instruction = (
        f"You are {winner_label}; your answer was chosen. Write the final answer to the task "
        "for the user: complete and self-contained, improved with anything useful from the "
        "other answers. Reply with the answer text only."
    )
    reasons = "\n".join(f"- {r.strip()}" for r in vote_reasons if r.strip()) or "- (none given)"
    user = (
        f"TASK:\n{task.strip()}\n\n{answers_block(answers, answers_budget, winner_label)}\n\n"
        f"WHY {winner_label.upper()} WAS CHOSEN:\n{reasons}"
    )
    return [
        _system(system_message, instruction),
        *_history(history),
        ChatMessage(role="user", content=user),
    ]


def workflow_tools(valid_labels: Sequence[str], can_answer: bool) -> list[dict[str, Any]]:
    """Return the workflow tools that can succeed, in OpenAI function-tool JSON.

    Args:
        valid_labels: labels of agents that currently have an answer (vote targets).
            Empty means no answer exists, so ``vote`` is not offered.
        can_answer: False at the answer cap, so ``new_answer`` is not offered.
    """
    tools: list[dict[str, Any]] = []
    if can_answer:
        tools.append(
            _function(
                NEW_ANSWER,
                "Submit your complete answer to the task (new, or better than the current ones).",
                {"content": {"type": "string", "description": "The full answer text."}},
            )
        )
    if valid_labels:
        tools.append(
            _function(
                VOTE,
                "Vote for the agent whose current answer is best.",
                {
                    "agent_id": {
                        "type": "string",
                        "enum": list(valid_labels),
                        "description": "Label of the agent you vote for.",
                    },
                    "reason": {"type": "string", "description": "Why this answer is best."},
                },
            )
        )
    return tools


def _function(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
            },
        },
    }

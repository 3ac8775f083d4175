"""What agents read: coordination and presentation prompts, and the workflow tools.

Pure functions of plain values. Prompts are short on purpose (local models read
about a hundred tokens a second) and only ever name agents by label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from massgen_proto.code_text import elide_example_runs, elide_task_docstrings
from massgen_proto.function_tools import function_tool
from massgen_proto.messages import ChatMessage

__all__ = [
    "NEW_ANSWER",
    "VOTE",
    "answers_block",
    "coordination_messages",
    "planning_instruction",
    "presentation_messages",
    "workflow_tools",
]

NEW_ANSWER = "new_answer"
VOTE = "vote"

WRITE_THEN_CALL = (
    "write your complete answer as normal text (code in a fenced block), then call "
    "new_answer to submit it; its content may stay empty, your text is the answer."
)
"""How an answer is given: as text, committed by the call (MassGen's convention; the
worker turns an empty ``content`` into the response's text). Small local models write
far better prose than JSON strings; hosted models may still put the answer in the call."""

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


_CLOSING = (
    "Which answer above is correct for the task? Check each one, then vote for the best, "
    "or write a better answer."
)
_CLOSING_VOTE = (
    "Which answer above is correct for the task? Check each one{how}, then vote for the best."
)
"""The last line of a coordination turn's user message when answers exist."""


PLANNING_MODE = (
    "Planning mode: while answers are compared, take no action that changes anything "
    "outside your own workspace (no messages sent, no posts, no external writes). Say "
    "which steps and tool calls you would make and what they should achieve; the agent "
    "whose answer is chosen carries them out when it presents."
)
"""The coordination instruction of ``orchestrator.coordination.enable_planning_mode``
when the config gives no ``planning_mode_instruction``."""


def planning_instruction(enabled: bool, custom: str | None = None) -> str | None:
    """The planning-mode line of a coordination prompt, or None when planning mode is off.

    Args:
        enabled: ``orchestrator.coordination.enable_planning_mode``.
        custom: ``orchestrator.coordination.planning_mode_instruction``, if given.
    """
    if not enabled:
        return None
    return (custom or "").strip() or PLANNING_MODE


MIN_SHARE = 500
"""The fewest characters of an answer a prompt shows, however many answers there are."""


def answers_block(
    answers: Mapping[str, str],
    budget: int | None = None,
    keep: str | None = None,
    checks: Mapping[str, str] | None = None,
    task: str | None = None,
) -> str:
    """Render the CURRENT ANSWERS block: each latest answer under its label.

    Args:
        answers: label -> latest answer text, in config order.
        budget: characters all answers together may take (None: no bound). Each answer
            gets an equal share (at least ``MIN_SHARE``); a longer one is cut with a note,
            so a prompt grows with the team's size, never with its answers' length.
        keep: a label whose answer is never cut (the presenter's own).
        checks: label -> what running its code against the task's examples showed
            (``CodeCheck.summary``), written under the answer.
        task: the task; a docstring an answer copied from it is shown as a short
            marker (``code_text.elide_task_docstrings``) and its runs of examples after
            its definitions as a one-line note (``code_text.elide_example_runs``),
            except in ``keep``'s answer.
    """
    if not answers:
        return "CURRENT ANSWERS:\n(none yet)"
    share = None
    if budget is not None:
        kept = len(answers[keep].strip()) if keep is not None and keep in answers else 0
        others = len(answers) - (1 if keep is not None and keep in answers else 0)
        share = max(MIN_SHARE, (budget - kept) // max(1, others))
    parts = []
    for label, text in answers.items():
        body = text.strip()
        if task is not None and label != keep:
            body = elide_example_runs(elide_task_docstrings(body, task))
        if share is not None and label != keep and len(body) > share:
            cut = len(body) - share
            body = f"{body[:share]}\n[... {cut} more characters of {label}'s answer not shown]"
        checked = (checks or {}).get(label)
        if checked:
            body += f"\n[its code run against the task's examples: {checked}]"
        parts.append(f"<{label}>\n{body}\n</{label}>")
    return "CURRENT ANSWERS:\n" + "\n".join(parts)


def _others_first(answers: Mapping[str, str], viewer: str | None) -> Mapping[str, str]:
    """The answers in config order rotated to start after ``viewer``'s own (which comes
    last); unchanged when the viewer has no answer. Small models favour the first answer
    they read: each agent then reads a different one first, and its own last."""
    labels = list(answers)
    if viewer is None or viewer not in answers or len(labels) < 2:
        return answers
    at = labels.index(viewer) + 1
    return {label: answers[label] for label in labels[at:] + labels[:at]}


def _history(history: Sequence[ChatMessage]) -> list[ChatMessage]:
    # Earlier turns of a session are context; their system messages would compete
    # with ours, so only the user/assistant exchange is kept.
    return [m for m in history if m.role != "system"]


ROLE = "You are one of several agents answering this task."
"""Said in every turn that shows the team's answers, before what to do now."""


def _system(system_message: str | None) -> list[ChatMessage]:
    # The agent's own system message alone (none when it has none): the first turn is
    # then the member's plain chat, and the system message is the same in every turn,
    # presentation included, so llama.cpp's prompt cache reuses it and the task that
    # follows. What changes between turns comes after the answers. (The team line was
    # here; measured on HumanEval, members answered worse in the team than alone.)
    if not system_message or not system_message.strip():
        return []
    return [ChatMessage(role="system", content=system_message.strip())]


_RUN_CODE = {True: " (run its code with your tools)", False: ""}


def _first_instruction(
    *, planning: str | None, remaining_seconds: float | None, has_tools: bool
) -> str:
    """What a first turn (no answers yet) adds after the task: nothing when the agent has
    only the workflow tools and no planning mode.

    The task alone is then the whole message, as in plain chat: measured on HumanEval
    with the local 0.5B model, a first turn framed as coordination (headers, "(none
    yet)", how to call ``new_answer``) wrote worse code than the same member in plain
    chat (the explainer passed 5 of 21 problems there against 11 in plain chat; the
    task alone: 7), and made it write calls of ``new_answer`` into its code. The call
    is still required (``tool_choice``) and ``new_answer`` is the only tool offered, so
    the reply is the answer; the tool's description says an empty ``content`` submits
    the text.
    """
    lines = []
    if has_tools:
        lines.append(f"You may use your tools first; then {WRITE_THEN_CALL}")
    if planning:
        lines.append(planning)
    if has_tools and remaining_seconds is not None:
        lines.append(f"Time left: about {max(0, round(remaining_seconds))} seconds.")
    return " ".join(lines)


def _coordination_instruction(
    *,
    can_answer: bool,
    voting_sensitivity: str,
    planning: str | None,
    remaining_seconds: float | None,
    can_run_code: bool,
    has_tools: bool,
) -> str:
    """What a coordination turn with answers asks for now (see ``coordination_messages``)."""
    lines = [ROLE]
    if not can_answer:
        # The closing line asks for the check and the vote; said once, it costs each
        # voter fewer tokens to read.
        lines.append("You have used all your answers: write no new answer.")
    else:
        check = "check each current answer against the task" + _RUN_CODE[can_run_code]
        lines.append(
            f"First {check}. If one is correct and complete, vote for the best one with vote, "
            f"saying what you checked; otherwise {WRITE_THEN_CALL}"
        )
        lines.append(_SENSITIVITY.get(voting_sensitivity, _SENSITIVITY["lenient"]))
    lines.append(
        "You may use other tools first, then end with exactly one workflow tool call."
        if has_tools
        else "End with exactly one workflow tool call."
    )
    if planning:
        lines.append(planning)
    if remaining_seconds is not None:
        lines.append(f"Time left: about {max(0, round(remaining_seconds))} seconds.")
    return " ".join(lines)


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
    planning: str | None = None,
    can_run_code: bool = False,
    viewer: str | None = None,
    checks: Mapping[str, str] | None = None,
    has_tools: bool = True,
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
        planning: the planning-mode instruction (``planning_instruction``), or None.
        can_run_code: the agent has a tool that runs code (command line, code
            execution): it is asked to run the answers' code before voting.
        viewer: the label of the agent the turn is for; its answers are then shown
            starting after its own (``_others_first``), so agents that favour the first
            answer shown do not all favour the same one. None: config order.
        checks: label -> the result of running its answer's code against the task's
            examples (see ``answers_block``).
        has_tools: the agent has tools besides the workflow ones (it is told it may
            use them first).

    Returns:
        system message, the history, then the user message with the task and answers.
    """
    if not answers:
        extra = _first_instruction(
            planning=planning, remaining_seconds=remaining_seconds, has_tools=has_tools
        )
        user = f"{task.strip()}\n\n{extra}" if extra else task.strip()
        return [
            *_system(system_message),
            *_history(history),
            ChatMessage(role="user", content=user),
        ]
    instruction = _coordination_instruction(
        can_answer=can_answer,
        voting_sensitivity=voting_sensitivity,
        planning=planning,
        remaining_seconds=remaining_seconds,
        can_run_code=can_run_code,
        has_tools=has_tools,
    )
    shown = _others_first(answers, viewer)
    # The task first, as the first turn asked it: llama.cpp's cache keeps it.
    user = f"{task.strip()}\n\n{answers_block(shown, answers_budget, checks=checks, task=task)}"
    user += f"\n\n{instruction}"
    # Said again last, where a small model looks: otherwise it tends to continue the
    # answers block with one more answer instead of judging the ones shown.
    user += "\n\n" + (
        _CLOSING_VOTE.format(how=_RUN_CODE[can_run_code] or " in a few sentences")
        if not can_answer
        else _CLOSING
    )
    return [*_system(system_message), *_history(history), ChatMessage(role="user", content=user)]


def presentation_messages(
    *,
    task: str,
    answers: Mapping[str, str],
    winner_label: str,
    vote_reasons: Sequence[str] = (),
    system_message: str | None = None,
    history: Sequence[ChatMessage] = (),
    answers_budget: int | None = None,
    votes: Mapping[str, int] | None = None,
    dissent: Sequence[tuple[str, str]] = (),
    checks: Mapping[str, str] | None = None,
) -> list[ChatMessage]:
    """Build the messages of the winner's final presentation turn.

    The winner keeps its answer's full detail and fixes what the other answers and the
    dissenting votes show to be wrong; the final answer never mentions agents, labels,
    votes or the process (the user sees only the answer).

    Args:
        task: the user's question.
        answers: label -> latest answer, in config order.
        winner_label: the presenting agent's label.
        vote_reasons: reasons of the votes the winner received.
        system_message: the winner's own system message, if any.
        history: earlier turns of a multi-turn session.
        answers_budget: characters the answers block may take; the winner's own answer
            is always shown whole, the others share the rest.
        votes: label -> votes received on the current answers (None: not shown).
        dissent: ``(label voted for, reason)`` of the votes for other answers.
        checks: label -> the result of running its answer's code against the task's
            examples; the presentation's code is run against them too.
    """
    instruction = (
        f"{ROLE} You are {winner_label}; your answer was chosen. Write the final answer to "
        "the task for the user. Keep all of your answer's detail (code stays complete); "
        "fix only what the other answers or the objections show to be wrong. Do not mention "
        "agents, answers, votes or this process. Reply with the final answer only."
    )
    reasons = "\n".join(f"- {r.strip()}" for r in vote_reasons if r.strip()) or "- (none given)"
    # The answers in the order the winner last read them (its own last): the prompt
    # then begins as its last coordination turn's did, which llama.cpp has cached.
    shown = _others_first(answers, winner_label)
    parts = [
        task.strip(),
        answers_block(shown, answers_budget, winner_label, checks, task),
    ]
    if votes:
        counts = ", ".join(f"{label} {n}" for label, n in votes.items())
        parts.append(f"VOTES: {counts}")
    parts.append(f"WHY {winner_label.upper()} WAS CHOSEN:\n{reasons}")
    objections = [f"- for {label}: {r.strip()}" for label, r in dissent if r.strip()]
    if objections:
        parts.append("OBJECTIONS (votes for other answers):\n" + "\n".join(objections))
    parts.append(instruction)
    return [
        *_system(system_message),
        *_history(history),
        ChatMessage(role="user", content="\n\n".join(parts)),
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
            function_tool(
                NEW_ANSWER,
                "Submit your complete answer to the task (new, or better than the current ones).",
                {
                    "content": {
                        "type": "string",
                        "description": "The full answer text; leave it empty to submit the "
                        "answer you wrote as text before this call.",
                    }
                },
                required=(),
            )
        )
    if valid_labels:
        tools.append(
            function_tool(
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

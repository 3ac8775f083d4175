"""Agent behaviours for the fake model: answer from the conversation, like a real agent.

Runs with restarts make the number of model calls depend on timing, so end-to-end
tests give each fake model a *behaviour* (a function of the request) instead of a
fixed list of steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .openai_server import Step, answer, text, vote

__all__ = ["Behaviour", "first_votable", "offered_tools", "study_agent", "user_text"]

Behaviour = Callable[[dict[str, Any]], Step]


def offered_tools(request: dict[str, Any]) -> list[str]:
    """Names of the function tools a request offers."""
    return [t.get("function", {}).get("name", "") for t in request.get("tools") or ()]


def user_text(request: dict[str, Any]) -> str:
    """All user-message text of a request (task and current answers)."""
    return "\n".join(
        str(m.get("content") or "")
        for m in request.get("messages") or ()
        if m.get("role") == "user"
    )


def first_votable(request: dict[str, Any]) -> str:
    """The first label the request's vote tool lets the agent vote for (agents that agree
    with whichever answer came first)."""
    for tool in request.get("tools") or ():
        function = tool.get("function", {})
        if function.get("name") == "vote":
            return function["parameters"]["properties"]["agent_id"]["enum"][0]
    return "agent1"


def study_agent(
    my_answer: str,
    vote_for: str | Callable[[dict[str, Any]], str],
    presentation: str | None = None,
    reason: str = "most complete",
    **options: Any,
) -> Behaviour:
    """Answer once (until the answer is among the current answers), then vote; present.

    Args:
        my_answer: text of the agent's answer.
        vote_for: label to vote for, or a function of the request returning one.
        presentation: final text when it presents (default: ``Final: <my_answer>``).
        options: Step options (``tokens``, ``token_delay``) for every response.
    """

    def behave(request: dict[str, Any]) -> Step:
        tools = offered_tools(request)
        if not tools:
            return text(presentation or f"Final: {my_answer}", **options)
        if "new_answer" in tools and my_answer not in user_text(request):
            return answer(my_answer, **options)
        if "vote" in tools:
            target = vote_for(request) if callable(vote_for) else vote_for
            return vote(target, reason, **options)
        return answer(my_answer, **options)

    return behave

"""What the model reads about its non-workflow tools: results cut to size, calls refused."""

from __future__ import annotations

__all__ = ["budget_spent_message", "truncate_tool_result", "unavailable_tool_message"]


def unavailable_tool_message(name: str) -> str:
    """Tool result for a tool the agent was not offered."""
    return f"Error: tool {name!r} is not available. Use only the tools you were offered."


def budget_spent_message(name: str, budget: int) -> str:
    """Tool result for a call made after the turn's tool budget was spent (not run)."""
    return f"Error: {name!r} was not called: this turn's budget of {budget} tool calls is used up."


def truncate_tool_result(text: str, limit: int) -> str:
    """The first ``limit`` characters of a tool result, plus a note when more were cut.

    The note tells the model how much it did not see and to ask for less, so it can
    narrow the next call instead of trusting a partial result as whole.
    """
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return (
        f"{text[:limit]}\n[Tool result truncated: the last {cut} of {len(text)} characters "
        "were cut. Ask for less, e.g. read a narrower range or a smaller file.]"
    )

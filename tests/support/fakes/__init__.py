"""Test fakes: real parts standing in for external services (see openai_server)."""

from .openai_server import (
    FakeOpenAIServer,
    RecordedRequest,
    Step,
    answer,
    both,
    error,
    hang,
    malformed,
    text,
    vote,
    vote_first,
)

__all__ = [
    "FakeOpenAIServer",
    "RecordedRequest",
    "Step",
    "answer",
    "both",
    "error",
    "hang",
    "malformed",
    "text",
    "vote",
    "vote_first",
]

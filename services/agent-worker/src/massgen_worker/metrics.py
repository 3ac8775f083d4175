"""The worker's metrics (on the kit's registry, served at ``/metrics``)."""

from __future__ import annotations

from massgen_kit.metrics import REGISTRY
from massgen_proto.events import TokenUsage

__all__ = [
    "COST",
    "INFLIGHT",
    "MODEL_ERRORS",
    "MODEL_FIRST_TOKEN",
    "MODEL_SECONDS",
    "TOKENS",
    "TURNS",
    "count_usage",
    "error_class",
]

TURNS = REGISTRY.counter(
    "massgen_turns_total", "Turns this worker ran to an end, by outcome.",
    ["provider", "phase", "outcome"],
)  # fmt: skip
INFLIGHT = REGISTRY.gauge(
    "massgen_worker_inflight_turns", "Turns running in this worker now.", ["provider"]
)
TOKENS = REGISTRY.counter(
    "massgen_model_tokens_total", "Model tokens, by direction.",
    ["provider", "model", "direction"],
)  # fmt: skip
COST = REGISTRY.counter(
    "massgen_cost_usd_total", "Dollars of model tokens (litellm's price map; local: 0).",
    ["provider", "model"],
)  # fmt: skip
MODEL_ERRORS = REGISTRY.counter(
    "massgen_model_errors_total",
    "Provider errors, by class: each retry of a retryable one, and each one retrying "
    "cannot help (auth, bad request).",
    ["provider", "class"],
)  # fmt: skip
MODEL_SECONDS = REGISTRY.histogram(
    "massgen_model_request_seconds", "Model calls, from the request to the stream's end.",
    ["provider", "model"],
)  # fmt: skip
MODEL_FIRST_TOKEN = REGISTRY.histogram(
    "massgen_model_first_token_seconds", "Model calls, from the request to the first piece.",
    ["provider", "model"],
)  # fmt: skip


def error_class(status: int | None) -> str:
    """The error class of a provider's HTTP status (for metrics and alerts)."""
    if status is None:
        return "connection"
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "server"
    return "bad_request" if status >= 400 else "other"


def count_usage(event: TokenUsage, provider: str, model: str) -> None:
    """Count a model call's tokens and dollars."""
    TOKENS.inc(event.prompt_tokens, provider=provider, model=model, direction="prompt")
    TOKENS.inc(
        event.completion_tokens, provider=provider, model=model,
        direction="completion",
    )  # fmt: skip
    if event.cost_usd:
        COST.inc(event.cost_usd, provider=provider, model=model)

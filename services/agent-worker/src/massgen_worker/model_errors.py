"""The two ways a model call fails, and how a provider's failure is sorted into one.

``RetryableModelError`` (rate limits, 5xx, timeouts, connection errors) and
``FatalModelError`` (auth, bad request, missing key, unknown backend type), each carrying
the provider's own message. Both the direct path (``openai_http``) and the litellm path
(``llm``) raise these, so a turn handles one pair of classes whichever way a call went.
"""

from __future__ import annotations

import sys

__all__ = [
    "FatalModelError",
    "ModelError",
    "RetryableModelError",
    "classify_error",
    "error_for_status",
]

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class ModelError(Exception):
    """A model call failed; ``message`` is the provider's own words."""

    retryable: bool = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class RetryableModelError(ModelError):
    """Worth another try: rate limit, server error, timeout, connection failure."""

    retryable = True


class FatalModelError(ModelError):
    """Retrying cannot help: bad key, missing key, bad request, unknown backend."""


def error_for_status(message: str, status: int | None) -> ModelError:
    """The ModelError of an HTTP failure: retryable for 408/409/425/429, 5xx and no status
    (no response: connection, timeout); fatal for other statuses."""
    if status is None or status in _RETRYABLE_STATUS or status >= 500:
        return RetryableModelError(message, status)
    return FatalModelError(message, status)


def classify_error(error: BaseException) -> ModelError:
    """Map a provider/client exception to a retryable or fatal ModelError."""
    if isinstance(error, ModelError):
        return error
    message = str(getattr(error, "message", None) or error) or type(error).__name__
    status = getattr(error, "status_code", None)
    status = status if isinstance(status, int) else None
    name = type(error).__name__
    # An openai error exists only once litellm has imported openai; importing it here
    # just to ask would cost a direct-path worker half a second.
    openai = sys.modules.get("openai")
    transient = openai is not None and isinstance(
        error, openai.APITimeoutError | openai.APIConnectionError
    )
    transient = (
        transient
        or isinstance(error, TimeoutError | ConnectionError)
        or name in {"Timeout", "APIConnectionError", "ServiceUnavailableError"}
        or (status is not None and (status in _RETRYABLE_STATUS or status >= 500))
    )
    if transient:
        return RetryableModelError(message, status)
    return FatalModelError(message, status)

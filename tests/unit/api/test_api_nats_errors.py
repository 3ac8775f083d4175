"""A NATS failover is a 503 to retry, not an internal error."""

from __future__ import annotations

import nats.errors
from massgen_api.app import _nats_trouble
from nats.js.errors import APIError, KeyWrongLastSequenceError, NotFoundError


def test_bus_failures_are_retryable_and_real_errors_are_not():
    assert _nats_trouble(nats.errors.TimeoutError())
    assert _nats_trouble(nats.errors.ConnectionClosedError())
    assert _nats_trouble(nats.errors.NoRespondersError())
    assert _nats_trouble(APIError(code=503, description="JetStream system temporarily unavailable"))
    assert _nats_trouble(TimeoutError())
    assert not _nats_trouble(KeyWrongLastSequenceError())
    assert not _nats_trouble(NotFoundError(code=404))
    assert not _nats_trouble(ValueError("a bug"))

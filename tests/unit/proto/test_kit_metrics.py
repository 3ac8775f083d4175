"""The service kit's Prometheus text exposition."""

from __future__ import annotations

import pytest
from massgen_kit.health import HealthServer
from massgen_kit.metrics import Registry


def test_families_render_in_the_text_format():
    registry = Registry()
    runs = registry.counter("t_runs_total", "Runs.", ["status"])
    runs.inc(status="completed")
    runs.inc(2, status="failed")
    queue = registry.gauge("t_pending", "Pending.", ["provider"], read=lambda: {("vllm",): 3})
    queue.set(1, provider="openai")
    seconds = registry.histogram("t_seconds", "Time.", buckets=(1, 5))
    for value in (0.5, 2, 9):
        seconds.observe(value)
    text = registry.render()
    assert "# TYPE t_runs_total counter" in text
    assert (
        't_runs_total{status="completed"} 1' in text and 't_runs_total{status="failed"} 2' in text
    )
    assert 't_pending{provider="openai"} 1' in text and 't_pending{provider="vllm"} 3' in text
    assert 't_seconds_bucket{le="1"} 1' in text and 't_seconds_bucket{le="5"} 2' in text
    assert 't_seconds_bucket{le="+Inf"} 3' in text and "t_seconds_count 3" in text
    assert "t_seconds_sum 11.5" in text
    with pytest.raises(ValueError, match="takes labels"):
        runs.inc(provider="x")
    with pytest.raises(ValueError, match="cannot go down"):
        runs.inc(-1, status="x")
    assert registry.counter("t_runs_total", "Runs.", ["status"]) is runs


def test_the_health_server_serves_metrics():
    code, body = HealthServer(0, ready=lambda: True).status("/metrics")
    assert code == 200 and isinstance(body, str)

"""Property-based requests from /openapi.json (schemathesis): never a 5xx.

The stack has an orchestrator but no worker, so generated runs that happen to be
valid stay queued; every operation gets ``EXAMPLES`` generated requests (plus the
schema's explicit examples), at least 500 in all.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from tests.support.api_stack import ALICE, start_api_stack

pytestmark = pytest.mark.timeout(600)

EXAMPLES = 60
MIN_REQUESTS = 500


def test_no_server_errors_over_generated_requests(tmp_path, nats_url, fake_model):
    stack, stop = start_api_stack(tmp_path, nats_url, fake_model, workers=False)
    try:
        schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
        statuses: list[tuple[str, int]] = []
        failures: list[str] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 13

        def make_check(operation):
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def check(case) -> None:
                response = case.call(base_url=stack.url, headers=ALICE, timeout=30)
                statuses.append((operation.label, response.status_code))
                try:
                    case.validate_response(response, checks=[not_a_server_error])
                except Exception as error:  # collect all, report together
                    failures.append(f"{operation.label}: {response.status_code} {error}"[:500])

            return check

        for operation in operations:
            make_check(operation)()
    finally:
        stop()
    assert not failures, "\n".join(failures[:10])
    assert len(statuses) >= MIN_REQUESTS, f"only {len(statuses)} requests were generated"
    assert all(code < 500 for _, code in statuses)
    print(
        f"schemathesis: {len(statuses)} requests, "
        f"statuses {sorted(Counter(c for _, c in statuses).items())}"
    )

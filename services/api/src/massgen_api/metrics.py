"""Prometheus figures derived from run events, rendered as text exposition. Pure.

``Metrics.observe(event)`` is fed every run event the API process sees (all runs, not
only its own); ``render(...)`` writes the text format (version 0.0.4) by hand, so the
API needs no client library.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping

from massgen_proto import events as ev

__all__ = ["TURN_BUCKETS", "Metrics"]

TURN_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Upper bounds (seconds) of the turn-latency histogram."""

_TURN_ENDS = (ev.AnswerAccepted, ev.VoteAccepted, ev.VoteDiscarded, ev.AgentError, ev.FinalAnswer)


class Metrics:
    """Counters of one API process."""

    def __init__(self) -> None:
        self.run_status: dict[str, str] = {}
        """Run id -> last status seen (seeded from the API's run index at start-up)."""
        self.tokens: Counter[tuple[str, str]] = Counter()
        """(provider, prompt|completion) -> tokens."""
        self.turn_counts = [0] * (len(TURN_BUCKETS) + 1)
        self.turn_sum = 0.0
        self.sse_clients = 0
        self.runs_created = 0
        self._providers: dict[str, dict[str, str]] = {}
        self._turn_started: dict[tuple[str, str], float] = {}

    def observe_turn(self, seconds: float) -> None:
        """Add one turn duration to the histogram."""
        self.turn_counts[bisect.bisect_left(TURN_BUCKETS, seconds)] += 1
        self.turn_sum += seconds

    def observe(self, event: ev.RunEvent) -> None:
        """Update the counters with one run event.

        Turn latency is the time from ``turn_started`` to the event that ends that
        agent's turn (answer or vote accepted, vote discarded, error, final answer).
        """
        run = event.run_id
        match event:
            case ev.RunCreated():
                self.run_status.setdefault(run, "running")
                self._providers[run] = {a.id: a.provider for a in event.agents}
            case ev.TurnStarted():
                self._turn_started[(run, event.agent)] = event.ts
            case ev.TokenUsage():
                provider = self._providers.get(run, {}).get(event.agent, "unknown")
                self.tokens[(provider, "prompt")] += event.prompt_tokens
                self.tokens[(provider, "completion")] += event.completion_tokens
            case ev.RunFinished():
                self.run_status[run] = event.status
                self._providers.pop(run, None)
                for key in [k for k in self._turn_started if k[0] == run]:
                    del self._turn_started[key]
            case _:
                pass
        if isinstance(event, _TURN_ENDS):
            started = self._turn_started.pop((run, event.agent), None)
            if started is not None:
                self.observe_turn(max(0.0, event.ts - started))

    def render(self, queue_depth: Mapping[str, tuple[int, int]]) -> str:
        """The exposition text; ``queue_depth`` maps provider -> (pending, in flight)."""
        lines = [
            "# HELP massgen_runs Runs by status (runs this API knows of).",
            "# TYPE massgen_runs gauge",
        ]
        by_status = Counter(self.run_status.values())
        for status in ("running", "presenting", "completed", "timed_out", "failed", "cancelled"):
            lines.append(f'massgen_runs{{status="{status}"}} {by_status.get(status, 0)}')
        lines += [
            "# HELP massgen_api_runs_created_total Runs created through this API process.",
            "# TYPE massgen_api_runs_created_total counter",
            f"massgen_api_runs_created_total {self.runs_created}",
            "# HELP massgen_turn_seconds Time from turn start to the agent's answer or vote.",
            "# TYPE massgen_turn_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*TURN_BUCKETS, "+Inf"), self.turn_counts, strict=True):
            cumulative += count
            lines.append(f'massgen_turn_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines += [
            f"massgen_turn_seconds_sum {self.turn_sum:.6f}",
            f"massgen_turn_seconds_count {cumulative}",
            "# HELP massgen_tokens_total Model tokens used, by provider and kind.",
            "# TYPE massgen_tokens_total counter",
        ]
        for (provider, kind), value in sorted(self.tokens.items()):
            lines.append(f'massgen_tokens_total{{provider="{provider}",kind="{kind}"}} {value}')
        lines += [
            "# HELP massgen_queue_depth Turn requests waiting for a worker, by provider.",
            "# TYPE massgen_queue_depth gauge",
        ]
        for provider, (pending, _) in sorted(queue_depth.items()):
            lines.append(f'massgen_queue_depth{{provider="{provider}"}} {pending}')
        lines += [
            "# HELP massgen_turns_in_flight Turn requests delivered and not yet acknowledged.",
            "# TYPE massgen_turns_in_flight gauge",
        ]
        for provider, (_, in_flight) in sorted(queue_depth.items()):
            lines.append(f'massgen_turns_in_flight{{provider="{provider}"}} {in_flight}')
        lines += [
            "# HELP massgen_api_sse_clients Open SSE streams on this API process.",
            "# TYPE massgen_api_sse_clients gauge",
            f"massgen_api_sse_clients {self.sse_clients}",
        ]
        return "\n".join(lines) + "\n"

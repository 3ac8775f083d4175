"""Large teams: turn requests and prompt size as the team grows (issue 16).

The real state machine (``coordination.apply``) driven by the tests' scripted driver:
N agents answer one after another, each answer distinct (a sentence of 30-60 words),
then every agent votes for agent1. Counted: turn requests published until the
presentation starts, against the bound 3N + 1, and the words of every published turn's
messages (what the models are sent), against N² (the bound the issue sets: O(N²), not
the O(N³) of restarting everyone on every answer).

    .venv/bin/python bench/bench_large_teams.py
"""

from __future__ import annotations

import time

if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)

from tests.unit.orchestrator.orchestrator_driver import Driver, make_config  # noqa: E402

TEAMS = (3, 6, 10, 20)


def _answer(i: int) -> str:
    filler = " ".join(f"reason{i}_{k}" for k in range(30 + (i * 7) % 30))
    return f"Answer {i}: the capital is Paris, because {filler}."


def measure(n: int, policy: str = "finish") -> tuple[int, int]:
    """(turn requests, prompt words) of one N-agent run."""
    d = Driver(make_config(n, restart_policy=policy))
    for i in range(1, n + 1):
        d.answer(f"agent{i}", _answer(i), dt=0.5)
    for i in range(1, n + 1):
        if d.state.status == "running":
            d.vote(f"agent{i}", "agent1", dt=0.1)
    assert d.state.status == "presenting", d.state.status
    requests = d.requests()
    words = sum(len(m.content.split()) for r in requests for m in r.messages)
    return len(requests), words


def report() -> str:
    started = time.monotonic()
    lines = [
        "## Large teams: turn requests and prompt words as the team grows",
        "",
        "The real state machine with the tests' driver: N agents answer one after another "
        "(distinct answers of 30-60 words), then all vote for agent1 (`restart_policy: "
        "finish`, the default). Turn requests until the presentation starts; prompt words = "
        "words of every published turn's messages.",
        "",
        "| agents N | turn requests | bound 3N + 1 | | prompt words | words / N² |",
        "|---|---|---|---|---|---|",
    ]
    for n in TEAMS:
        requests, words = measure(n)
        ok = "✅" if requests <= 3 * n + 1 else "❌"
        lines.append(f"| {n} | {requests} | {3 * n + 1} | {ok} | {words:,} | {words / n**2:,.0f} |")
    lines += [
        "",
        "Prompt words per N² stay flat or fall as N grows: the total grows as N², not N³.",
        "",
        f"Command: `python bench/bench_large_teams.py` ({time.monotonic() - started:.1f} s).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())

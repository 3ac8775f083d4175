"""Serve the fake model as a process of its own, for benchmarks and subprocess tests.

    python -m tests.support.fakes.serve --token-delay 0.01 --tokens 200 --team 3

prints one JSON line ``{"base_url": "http://127.0.0.1:PORT/v1", "models": ["m1", ...]}``
on stdout, then serves study-agent behaviours for m1..mN until SIGTERM/SIGINT (or
until stdin closes, with ``--exit-on-eof``). Every agent answers once, then votes for
``--vote-for`` (default ``agent1``), and presents ``Final: <its answer>``.

Importable too: ``start_team(server, n)`` gives an existing ``FakeOpenAIServer`` the
same behaviours.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .agents import study_agent
from .openai_server import FakeOpenAIServer

__all__ = ["TEAM_ANSWERS", "start_team"]

TEAM_ANSWERS = [
    "Canberra is the capital of Australia.",
    "The capital of Australia is Canberra, chosen as a compromise between Sydney and Melbourne.",
    "Australia's capital city is Canberra, in the Australian Capital Territory.",
]


def team_answer(index: int) -> str:
    """Agent ``index``'s (0-based) answer: distinct for any team size."""
    if index < len(TEAM_ANSWERS):
        return TEAM_ANSWERS[index]
    return f"Answer number {index + 1}: Canberra, variant {index + 1}."


def start_team(server: FakeOpenAIServer, size: int, vote_for: str = "agent1") -> list[str]:
    """Give models m1..m<size> study-agent behaviours; return the model names."""
    models = [f"m{i + 1}" for i in range(size)]
    for index, model in enumerate(models):
        server.behave(model, study_agent(team_answer(index), vote_for))
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds per streamed piece")
    parser.add_argument("--tokens", type=int, default=None, help="words streamed per response")
    parser.add_argument("--team", type=int, default=3, help="models m1..mN")
    parser.add_argument("--vote-for", default="agent1", help="label every agent votes for")
    parser.add_argument(
        "--exit-on-eof", action="store_true", help="stop when stdin closes (parent died)"
    )
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(token_delay=args.token_delay, tokens=args.tokens).start()
    models = start_team(server, args.team, args.vote_for)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_on_eof:

        def watch_stdin() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps({"base_url": server.base_url, "models": models}), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    print(
        json.dumps({"requests": len(server.requests), "errors": server.errors[:5]}),
        file=sys.stderr,
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: orchestrator CPU for one whole 3-agent run through ``coordination.apply``.

A run is: ``new_run``, every turn started, three answers (``restart_policy: interrupt``
so each later turn sees the current set), three votes, consensus, presentation. The
"with persistence" figure also serialises the state and every command to JSON after
each transition, as the NATS adapter does. Target: at most 50 ms CPU per run.

Run either way::

    .venv/bin/python bench/bench_coordination.py          # prints CPU ms per run
    .venv/bin/python -m pytest bench/bench_coordination.py --benchmark-only
"""

from __future__ import annotations

import time

from massgen_orchestrator.commands import PublishTurn
from massgen_orchestrator.coordination import apply, new_run
from massgen_orchestrator.state import RunState
from massgen_proto.config import parse_config
from massgen_proto.messages import (
    PresentationFinished,
    TurnStarted,
    WorkflowCall,
    WorkflowSubmission,
)

CONFIG = parse_config(
    {
        "agents": [
            {"id": f"agent-{i}", "backend": {"type": "openai", "model": "gpt-4o-mini"}}
            for i in range(3)
        ],
        "orchestrator": {"restart_policy": "interrupt", "answer_novelty_requirement": "balanced"},
    }
)
ANSWERS = [
    "Paris is the capital of France. " * 20,
    "The capital city of France is Paris, on the river Seine. " * 20,
    "France is governed from Paris, its capital and largest city. " * 20,
]


def run_once(persist: bool = False) -> RunState:
    """Play one complete run; return the final state."""
    now = 1_000.0
    state, commands = new_run("bench", "What is the capital of France?", CONFIG, [], now)
    current: dict[str, str] = {}

    def track() -> None:
        for command in commands:
            if isinstance(command, PublishTurn):
                current[command.request.label] = command.request.turn_id

    def step(message) -> None:
        nonlocal state, commands
        state, commands = apply(state, message, now)
        if persist:
            state.model_dump_json()
            for command in commands:
                command.model_dump_json()
        track()

    track()
    labels = ["agent1", "agent2", "agent3"]
    for label in labels:
        step(TurnStarted(run_id="bench", turn_id=current[label], worker="w"))
    for label, text in zip(labels, ANSWERS, strict=True):
        call = WorkflowCall(name="new_answer", arguments={"content": text})
        step(WorkflowSubmission(run_id="bench", turn_id=current[label], attempt=1, calls=[call]))
        for other in labels:
            step(TurnStarted(run_id="bench", turn_id=current[other], worker="w"))
    for label in labels:
        call = WorkflowCall(name="vote", arguments={"agent_id": "agent2", "reason": "clearest"})
        step(WorkflowSubmission(run_id="bench", turn_id=current[label], attempt=1, calls=[call]))
    step(TurnStarted(run_id="bench", turn_id=current["agent2"], worker="w"))
    step(PresentationFinished(run_id="bench", turn_id=current["agent2"], content="Paris."))
    assert state.status == "completed", state.status
    assert len(state.answers) == 3 and all(a.vote for a in state.agents)
    return state


def cpu_ms_per_run(runs: int = 200, persist: bool = False) -> float:
    """Mean process CPU milliseconds per run over ``runs`` runs (after a warm-up)."""
    run_once(persist)
    started = time.process_time()
    for _ in range(runs):
        run_once(persist)
    return (time.process_time() - started) * 1000 / runs


def test_full_run_apply_only(benchmark):
    state = benchmark(run_once)
    assert state.final_answer == "Paris."


def test_full_run_with_persistence(benchmark):
    benchmark(run_once, True)


if __name__ == "__main__":
    print(f"apply only:             {cpu_ms_per_run():.2f} ms CPU per 3-agent run")
    print(f"apply + JSON (adapter): {cpu_ms_per_run(persist=True):.2f} ms CPU per 3-agent run")

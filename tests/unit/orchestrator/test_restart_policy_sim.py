"""The restart-policy simulation (bench/bench_restart_policy.py) on a few seeds.

It drives the real ``coordination.apply``, so these are invariants of the state machine
under many interleavings as much as checks of the bench: every run completes, the
literal ``finish`` rule never cancels a turn, the narrowed one never loses a first
answer, and the module switch is restored afterwards.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from massgen_orchestrator import coordination

_PATH = Path(__file__).resolve().parents[3] / "bench" / "bench_restart_policy.py"
_NAME = "_bench_restart_policy_under_test"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[_NAME]
    return module


bench = _load()
SEEDS = range(8)
SCENARIO = next(sc for sc in bench.SCENARIOS if sc.agents == 3 and sc.p_improve > 0.1)
NARROWED, LITERAL, INTERRUPT = bench.RULES


def _counts(stats) -> list[float]:
    return [
        stats.answers_accepted,
        stats.answers_lost,
        stats.first_answers_lost,
        stats.votes_wasted,
        stats.turns,
        stats.turns_cancelled,
        stats.prompt_words,
    ]


@pytest.mark.parametrize("rule", [NARROWED, LITERAL], ids=["narrowed", "literal"])
def test_every_run_completes_with_sane_counts(rule):
    before = coordination.FINISH_ANSWERED_TURNS
    for seed in SEEDS:
        stats = bench.simulate(SCENARIO, rule, seed)
        assert stats.completed, (rule.name, seed)
        assert all(n >= 0 for n in _counts(stats)), (rule.name, seed, stats)
        # Every agent answers, then at most `rounds` improvements each.
        assert SCENARIO.agents <= stats.answers_accepted
        assert stats.answers_accepted <= SCENARIO.agents * (1 + SCENARIO.rounds)
        assert stats.turns > stats.answers_accepted  # the votes and the presentation too
        assert 0 < stats.consensus_seconds <= stats.finished_seconds
        assert stats.first_answers_lost == 0, (rule.name, seed)  # `finish` keeps them
        if rule.finish_answered:
            assert stats.answers_lost == 0 and stats.turns_cancelled == 0, (seed, stats)
        else:
            assert stats.votes_wasted == 0, (seed, stats)  # running votes are cancelled
    assert coordination.FINISH_ANSWERED_TURNS == before


def test_simulation_is_deterministic():
    first = [bench.simulate(SCENARIO, NARROWED, seed) for seed in SEEDS[:3]]
    again = [bench.simulate(SCENARIO, NARROWED, seed) for seed in SEEDS[:3]]
    assert first == again


def test_interrupt_loses_first_answers_that_finish_keeps():
    """Sanity of the measure: with staggered first answers `interrupt` cancels first
    answers in flight, which both `finish` rules let finish."""
    lost = {
        rule.name: sum(bench.simulate(SCENARIO, rule, seed).first_answers_lost for seed in SEEDS)
        for rule in (NARROWED, LITERAL, INTERRUPT)
    }
    assert lost == {NARROWED.name: 0, LITERAL.name: 0, INTERRUPT.name: lost[INTERRUPT.name]}
    assert lost[INTERRUPT.name] > 0

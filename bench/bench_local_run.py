"""`make run` on the default 3-agent team and the local Qwen 0.5B model.

Measures what a new user waits for: the whole command (target ≤ 90 s on 2 cores),
and the peak memory of the process tree (CLI + nats-server + worker + model server).
Run: python bench/run_all.py local_run
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)
from massgen_proto.providers import BACKENDS  # noqa: E402

from bench.proctree import run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUESTION = re.search(r"^Q \?= (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
RUNS = 2


def main() -> None:
    env = {k: v for k, v in os.environ.items()}
    for backend in BACKENDS.values():
        if backend.api_key_env:
            env.pop(backend.api_key_env, None)
    massgen = str(Path(sys.executable).with_name("massgen"))
    rows = []
    with tempfile.TemporaryDirectory() as cwd:
        for index in range(RUNS):
            run = run_measured(
                [massgen, "--output", "json", QUESTION], timeout=900, env=env, cwd=cwd
            )
            if run.returncode != 0:
                raise SystemExit(f"run {index + 1} failed: {run.stderr[-2000:]}")
            result = json.loads(run.stdout)
            tokens = sum(t["completion_tokens"] for t in result["tokens"].values())
            rows.append(
                f"| {index + 1} | {run.wall_seconds:.1f} | {run.cpu_seconds:.1f} | "
                f"{run.peak_rss_mb:.0f} | {len(result['answers'])} | {tokens} | "
                f"{result['status']} |"
            )
    print("## `make run`: default team on the local model (qwen2.5-coder-0.5b)\n")
    print(f"Command: `massgen --output json \"{QUESTION}\"` with no provider keys "
          "(run 1 starts the model cold; the weights are already assembled).\n")  # fmt: skip
    print("| run | wall s (target ≤ 90) | CPU s (tree) | peak RSS MB (tree) | answers | "
          "completion tokens | status |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

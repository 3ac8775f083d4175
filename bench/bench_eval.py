"""HumanEval through `massgen eval`: the default local team (qwen2.5-coder-0.5b) vs its members.

Every 4th problem (`--subset 0:164:4`, 41 problems) with the plain-chat baseline; each
problem is one team run (about a minute on 2 cores) plus one plain call per member.
The results folder (`.massgen/evals/bench-humaneval`, one for every subset) is kept, so
an interrupted bench resumes and a larger subset reuses what a smaller one scored.
`MASSGEN_BENCH_EVAL_SUBSET=0:164:16` measures a smaller subset. `bench_eval_1_5b.py` is
the same team on qwen2.5-coder-1.5b.
Run: python bench/run_all.py eval
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from massgen_cli.evals.datasets import load_humaneval, select
from massgen_cli.teams import DEFAULT_LOCAL_MODEL, default_team
from massgen_proto.providers import BACKENDS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    subset = os.environ.get("MASSGEN_BENCH_EVAL_SUBSET", "0:164:4")
    measure(DEFAULT_LOCAL_MODEL, subset, ROOT / ".massgen" / "evals" / "bench-humaneval")


def team_file(model: str, out: Path) -> Path:
    """The default local team with every member on ``model``, written beside ``out``."""
    config, _ = default_team(env={})
    for agent in config["agents"]:
        agent["backend"]["model"] = model
    path = out.with_name(f"{out.name}-team.json")  # JSON is YAML: --config reads it
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def phase_line(out: Path, records: list[dict]) -> str:
    """Where a team run's wall time goes, mean over the runs' event logs: until every
    member's first answer is in, then until the votes decide, then the presentation."""
    spans: list[tuple[float, float, float]] = []
    for record in records:
        path = out / (record.get("log_dir") or "") / "events.jsonl"
        if not record.get("log_dir") or not path.exists():
            continue
        events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        first: dict[str, float] = {}
        for e in events:
            if e["kind"] == "answer_accepted":
                first.setdefault(e["label"], e["ts"])
        at = {e["kind"]: e["ts"] for e in events if e["kind"] in ("consensus", "run_finished")}
        if first and len(at) == 2:
            answered = max(first.values())
            spans.append((answered - events[0]["ts"], at["consensus"] - answered,
                          at["run_finished"] - at["consensus"]))  # fmt: skip
    if not spans:
        return ""
    answers, votes, present = (sum(span[i] for span in spans) / len(spans) for i in range(3))
    return (f"Where a run's time goes (mean of {len(spans)} runs): {answers:.0f} s until every "
            f"member's first answer is in, {votes:.0f} s more until the votes decide, "
            f"{present:.0f} s of presentation.")  # fmt: skip


def measure(model: str, subset: str, out: Path) -> None:
    """Run (or resume) the eval of the default team on ``model`` and print its section.

    One folder for every subset: a larger subset reuses the problems already scored.
    """
    env = dict(os.environ)
    for backend in BACKENDS.values():  # the local team, whatever keys this shell has
        if backend.api_key_env:
            env.pop(backend.api_key_env, None)
    command = ["eval", "humaneval", "--subset", subset, "--baseline", "single", "--seed", "0"]
    if model != DEFAULT_LOCAL_MODEL:
        command += ["--config", str(team_file(model, out).relative_to(ROOT))]
    full = " ".join(["massgen", *command[:2], *command[4:]])  # without --subset
    massgen = str(Path(sys.executable).with_name("massgen"))
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:  # the machine is shared: say how busy it was
        while not done.wait(30):
            loads.append(os.getloadavg()[0])

    threading.Thread(target=sample, daemon=True).start()
    started = time.monotonic()
    proc = subprocess.run(
        [massgen, *command, "--out", str(out)], env=env, cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=sys.stderr, timeout=12 * 3600,
    )  # fmt: skip
    done.set()
    if proc.returncode != 0:
        raise SystemExit(f"massgen eval failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    took = time.monotonic() - started
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    total = len(load_humaneval().problems)
    chosen = len(select(load_humaneval().problems, subset, None))
    team = summary["cost"]["team"]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    per_problem = [
        (r.get("wall_seconds") or 0)
        + max((s["wall_seconds"] for s in r["baselines"].get("single", {}).values()), default=0)
        for r in records
    ]
    mean_problem = sum(per_problem) / len(per_problem)
    team_name = "the default local team" + ("" if model == DEFAULT_LOCAL_MODEL else f" on {model}")
    print(f"## `massgen eval humaneval`: {team_name} vs its members\n")
    print(f"Command: `massgen {' '.join(command)}` with no provider keys: the default "
          f"3-agent team (solver, checker, explainer) on {model}, "
          "`max_tokens` 384, temperatures 0.2/0.5/0.8, seeds 0/1/2 (`--seed N` gives the "
          "i-th member N+i), one answer each, then votes. A member's first turn is its "
          "plain chat (its system message and the task); members write their answers as "
          "text and commit them with a short grammar-constrained call. Each answer's code "
          "is run against the task's own examples in the gateway's sandbox; only the "
          "answers passing the most examples can win, then the most voted, ties going to "
          "the answer the others agree with most; code that does not parse never wins over "
          "code that does; a presentation gives way to the winner's answer when its code "
          "passes fewer examples, or changes the code where no example confirms it, or "
          "has a block that does not parse.\n")  # fmt: skip
    if chosen < total:
        print(f"**A subset: {summary['problems']} of HumanEval's {total} problems** "
              f"(`--subset {subset}`); the whole benchmark is `{full}` "
              f"(about {total * mean_problem / 3600:.1f} h at this subset's "
              f"{mean_problem:.0f} s per problem, team run and baseline).\n")  # fmt: skip
    print("| system | pass@1 | passed |")
    print("|---|---|---|")
    for system in summary["systems"]:
        print(f"| {system['label']} | {100 * system['pass_at_1']:.1f}% | "
              f"{system['passed']}/{system['total']} |")  # fmt: skip
    headline = summary["headline"]
    lines = []
    for name in ("best_member", "best_single", "oracle"):
        if name == "oracle" and "final_minus_oracle" in headline:
            lines.append(f"vs the oracle: {100 * headline['final_minus_oracle']:+.1f} points")
        elif name in headline:
            delta = 100 * headline[f"final_minus_{name}"]
            lines.append(f"team final vs {name.replace('_', ' ')} "
                         f"(`{headline[name]['key']}`): {delta:+.1f} points")  # fmt: skip
    print("\n" + "; ".join(lines) + ".\n")
    print(f"Per problem, the team: {team['mean_wall_seconds']:.1f} s wall, "
          f"{team['mean_tokens']:,.0f} tokens ({team['mean_prompt_tokens']:,.0f} prompt + "
          f"{team['mean_completion_tokens']:,.0f} completion), "
          f"{team['mean_model_calls']:.1f} model calls (turns).", end=" ")  # fmt: skip
    singles = [v for k, v in summary["cost"].items() if k.startswith("single:")]
    if singles:
        wall = sum(s["mean_wall_seconds"] for s in singles) / len(singles)
        tokens = sum(s["mean_tokens"] for s in singles) / len(singles)
        print(f"One member alone: {wall:.1f} s, {tokens:,.0f} tokens, 1 call.", end=" ")
    statuses = ", ".join(f"{n} {s}" for s, n in summary["statuses"].items())
    print(f"Runs: {statuses}; {summary['fallback_finals']} final answer(s) were fallbacks "
          "(the presentation refused, the winner's answer used); the final answer failed "
          f"where the winner's own answer passed on {summary.get('final_worse_than_winner', 0)}"
          f" of {summary['problems']} problems.")  # fmt: skip
    if spent := phase_line(out, records):
        print(f"\n{spent}")
    busy = (f"; load average during the bench {sum(loads) / len(loads):.1f} on "
            f"{os.cpu_count()} cores" if loads else "")  # fmt: skip
    print(f"\nThis command: {took / 60:.0f} min (problems already in the results folder are "
          f"not run again; the problems took {sum(per_problem) / 60:.0f} min in all{busy}). "
          f"Sandbox: {summary['sandbox']}.")  # fmt: skip


if __name__ == "__main__":
    main()

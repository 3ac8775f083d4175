"""The ``massgen`` command: ask a team a question, on an embedded stack.

Exit codes: 0 completed, 2 bad usage or config, 3 timed out or failed,
130 cancelled with Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_USAGE, EXIT_RUN_FAILED, EXIT_CANCELLED = 0, 2, 3, 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="massgen",
        description="Ask a team of LLM agents a question; they answer, vote and converge.",
    )
    parser.add_argument("question", nargs="?", help="the question or task")
    source = parser.add_argument_group("team (one of)")
    source.add_argument("--config", help="team config file (MassGen YAML/JSON)")
    source.add_argument("--model", help="quick mode: one agent on this model")
    parser.add_argument(
        "--backend", help="backend type for --model (e.g. openai, claude, chatcompletion)"
    )
    parser.add_argument("--base-url", help="endpoint for --model (OpenAI-compatible servers)")
    parser.add_argument("--system-message", help="system prompt for --model")
    parser.add_argument("--no-display", action="store_true", help="no streaming display")
    parser.add_argument("--no-logs", action="store_true", help="do not write a log folder")
    parser.add_argument(
        "--debug", action="store_true", help="verbose service logs in the log folder"
    )
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: one result object on stdout (display goes to stderr)",
    )
    parser.add_argument("--log-dir", type=Path, help="log root (default .massgen/logs)")
    return parser  # fmt: skip


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"massgen: {message}", file=sys.stderr)
    return code


def _load_dotenv() -> None:
    try:
        from dotenv import load_dotenv
    except ImportError:  # optional convenience
        return
    load_dotenv(Path.cwd() / ".env", override=False)
    load_dotenv(Path.home() / ".env", override=False)


def _resolve_config(args: argparse.Namespace) -> tuple[dict[str, Any], str | None, str | None]:
    """Return (config mapping, source name, note for the user)."""
    from massgen_proto.config import load_config, parse_config

    from .teams import default_team, quick_config

    if args.config and args.model:
        raise ValueError("--config and --model are exclusive: give one")
    if args.config:
        config = load_config(args.config)
        return config.model_dump(mode="json"), args.config, None
    if args.model:
        data = quick_config(args.model, args.backend, args.base_url, args.system_message)
        return parse_config(data, "--model").model_dump(mode="json"), "--model", None
    data, note = default_team()
    return parse_config(data, "default team").model_dump(mode="json"), "default team", note


def _missing_keys(config: dict[str, Any]) -> list[str]:
    from massgen_proto.providers import BACKENDS

    missing = []
    for agent in config["agents"]:
        backend = agent["backend"]
        env = BACKENDS[backend["type"]].api_key_env
        if env and not backend.get("api_key") and not os.environ.get(env):
            missing.append(f"agent {agent['id']!r} ({backend['type']}) needs {env} to be set")
    return missing


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``massgen`` command."""
    args = _parser().parse_args(argv)
    if not args.question:
        return _fail('give a question, e.g. massgen --config team.yaml "What is 2+2?"')
    _load_dotenv()
    from massgen_proto.config import ConfigError

    try:
        config, source, note = _resolve_config(args)
    except ConfigError as error:
        return _fail(f"config error:\n{error}")
    except ValueError as error:
        return _fail(str(error))
    missing = _missing_keys(config)
    if missing:
        return _fail("missing API keys:\n  " + "\n  ".join(missing))
    if note:
        print(f"massgen: {note}", file=sys.stderr)
    code = asyncio.run(_run(args, config))
    sys.exit(code)


async def _run(args: argparse.Namespace, config: dict[str, Any]) -> int:
    from massgen_proto.config import parse_config
    from massgen_proto.ids import new_run_id
    from massgen_proto.logsetup import configure_logging

    from .client import RunRefused, follow_run
    from .display import SimpleDisplay
    from .embedded import (
        EmbeddedStack,
        LocalModelStartError,
        local_models_of,
        point_local_agents,
        providers_of,
    )
    from .runlog import RunLog, default_log_root, run_log_dir

    run_id = new_run_id()
    log_dir = None if args.no_logs else run_log_dir(args.log_dir or default_log_root(), run_id)
    service_log = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        service_log = (log_dir / "services.log").open("a", encoding="utf-8")
    configure_logging(
        "debug" if args.debug else "info",
        service_log or open(os.devnull, "w"),  # noqa: SIM115
    )
    run_config = parse_config(config)
    display_stream = sys.stderr if args.output == "json" else sys.stdout
    display = None if args.no_display else SimpleDisplay(display_stream)
    runlog = RunLog(log_dir) if log_dir is not None else None

    def on_event(event) -> None:
        if runlog is not None:
            runlog.write(event)
        if display is not None:
            display(event)

    cancel = asyncio.Event()
    interrupts = 0

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            os._exit(EXIT_CANCELLED)  # a second Ctrl-C: leave at once
        print("\nmassgen: cancelling (Ctrl-C again to quit at once)", file=sys.stderr)
        cancel.set()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, on_sigint)
    started = time.monotonic()
    stack = EmbeddedStack(
        providers_of(run_config), log_dir=log_dir, debug=args.debug,
        local_models=local_models_of(run_config),
        on_progress=lambda note: print(f"massgen: {note}", file=sys.stderr, flush=True),
    )  # fmt: skip
    try:
        async with stack:
            point_local_agents(config, stack.local_endpoints)
            try:
                summary = await follow_run(
                    stack.client, args.question, config, on_event, run_id=run_id, cancel=cancel
                )
            except RunRefused as error:
                return _fail(f"run refused: {error}")
    except LocalModelStartError as error:
        return _fail(str(error), EXIT_RUN_FAILED)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if runlog is not None:
        runlog.close(summary)
    if service_log is not None:
        service_log.close()
    result = summary.to_json(log_dir=str(log_dir) if log_dir else None)
    result["wall_seconds"] = round(time.monotonic() - started, 3)
    if args.output == "json":
        print(json.dumps(result, indent=2))
    elif log_dir is not None and display is not None:
        print(f"logs: {log_dir}", file=sys.stderr)
    if summary.status == "completed":
        return EXIT_OK
    if summary.status == "cancelled":
        return EXIT_CANCELLED
    return EXIT_RUN_FAILED


if __name__ == "__main__":
    main()

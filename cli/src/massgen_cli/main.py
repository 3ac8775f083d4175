"""The ``massgen`` command: ask a team a question, live, on a warm or embedded stack.

    massgen [options] "question"        one run (live display on a terminal)
    massgen [options]                   interactive multi-turn session
    massgen runs list | show RUN [--table] | replay RUN [--speed X]
    massgen up [--providers a,b] [--local MODEL] [--idle S] | down | status
    massgen serve api [--host H] [--port P] [--teams-dir DIR] [--providers a,b] [--nats URL]
    massgen --api URL [--token T] [--config FILE | --model M | --team NAME] "question"
    massgen eval BENCHMARK [--config FILE] [--subset A:B:C] ... | eval show RESULTS

In a terminal, a question that finds no warm stack runs on a stack of its own and starts
one in the background for the next commands (``--no-daemon`` / ``MASSGEN_NO_DAEMON=1``:
not); it stops after ``$MASSGEN_DAEMON_IDLE`` seconds unused (default 900).

``runs``, ``up``, ``down``, ``status``, ``serve`` and ``eval`` are subcommands only as the
*first* argument and spelled exactly so; ``massgen -- up`` asks the question "up".

Exit codes: 0 completed, 2 bad usage or config, 3 timed out or failed,
130 cancelled with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["SUBCOMMANDS", "main"]

SUBCOMMANDS = ("runs", "up", "down", "status", "serve", "eval")

# Only argparse is imported up front: every command imports what it needs when it
# runs, so ``massgen --help`` and the start of a run stay fast.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="massgen",
        description="Ask a team of LLM agents a question; they answer, vote and converge. "
        "With no question: an interactive session. Subcommands (first argument only): "
        "runs, up, down, status, serve, eval.",
    )
    parser.add_argument("question", nargs="?", help="the question or task (none: interactive)")
    source = parser.add_argument_group("team (one of)")
    source.add_argument("--config", help="team config file, or a bundled example's name")
    source.add_argument("--model", help="quick mode: one agent on this model")
    source.add_argument("--team", help="with --api: a team configured on the server")
    parser.add_argument(
        "--backend", help="backend type for --model (e.g. openai, claude, chatcompletion)"
    )
    parser.add_argument("--base-url", help="endpoint for --model (OpenAI-compatible servers)")
    parser.add_argument("--system-message", help="system prompt for --model")
    parser.add_argument("--list-examples", action="store_true", help="list bundled example teams")
    parser.add_argument(
        "--display",
        choices=("rich_terminal", "terminal", "simple"),
        help="display type (default: the config's ui.display_type, else rich_terminal on a "
        "terminal and simple otherwise)",
    )
    parser.add_argument(
        "--no-display", action="store_true", help="no live display: print only the final answer"
    )
    parser.add_argument("--no-logs", action="store_true", help="do not write a log folder")
    parser.add_argument(
        "--debug", action="store_true", help="verbose logs in the log folder (path is printed)"
    )
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: one result object on stdout (display goes to stderr)",
    )
    parser.add_argument("--log-dir", type=Path, help="log root (default .massgen/logs)")
    parser.add_argument("--session", help="resume (or add one turn to) a saved session")
    parser.add_argument(
        "--embedded", action="store_true", help="start a private stack even if one is warm"
    )
    parser.add_argument(
        "--no-daemon",
        action="store_true",
        help="do not start the warm stack in the background (also: MASSGEN_NO_DAEMON=1); "
        "in a terminal, a command that finds none starts one for the next commands",
    )
    remote = parser.add_argument_group("remote deployment")
    remote.add_argument(
        "--api", metavar="URL", help="run on the HTTP API at URL (e.g. http://host:8080)"
    )
    remote.add_argument("--token", help="bearer token for --api (default $MASSGEN_API_TOKEN)")
    return parser  # fmt: skip


def _subcommand_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="massgen", description="massgen subcommands")
    sub = parser.add_subparsers(dest="command", required=True)
    runs = sub.add_parser("runs", help="runs on disk").add_subparsers(dest="action", required=True)
    for name in ("list", "show", "replay"):
        cmd = runs.add_parser(name)
        cmd.add_argument("--log-dir", type=Path, help="log root (default .massgen/logs)")
        if name != "list":
            cmd.add_argument("run", help="run id, folder, unique prefix, or 'last'")
        if name == "show":
            cmd.add_argument("--table", action="store_true", help="the coordination table")
            cmd.add_argument("--no-cost", action="store_true", help="skip the cost estimate")
        if name == "replay":
            cmd.add_argument(
                "--speed", type=float, default=1.0, help="2 = twice as fast; 0 = at once"
            )
            cmd.add_argument("--display", choices=("rich_terminal", "terminal", "simple"))
    up = sub.add_parser("up", help="start a warm local stack in the background")
    up.add_argument("--providers", help="worker pools to serve (default: all)")
    up.add_argument("--local", action="append", default=[], help="also run this local model")
    up.add_argument("--config", help="serve what this team config needs")
    up.add_argument("--no-local", action="store_true", help="never start a local model")
    up.add_argument(
        "--idle", type=float, default=0.0, metavar="S",
        help="stop after S seconds with no run and no connected command (default: run until "
        "massgen down)",
    )  # fmt: skip
    up.add_argument("--debug", action="store_true")
    sub.add_parser("down", help="stop the warm stack (also one started on first use)")
    sub.add_parser("status", help="show the warm stack: pid, version, idle time, processes")
    serve = sub.add_parser("serve", help="serve the HTTP API").add_subparsers(
        dest="service", required=True
    )
    api = serve.add_parser(
        "api",
        help="the HTTP API on a private stack (or on --nats URL) until Ctrl-C / SIGTERM",
        description="Serve the HTTP API. Without --nats: also a private stack (nats-server, "
        "orchestrator, gateway, one worker). Bearer tokens: $MASSGEN_API_TOKENS / "
        "$MASSGEN_API_TOKENS_FILE (none: auth off).",
    )
    api.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8080, help="listen port (default 8080; 0: any)")
    api.add_argument("--teams-dir", type=Path, help="folder of named team files (<name>.yaml)")
    api.add_argument(
        "--providers", help="worker pools of the private stack (default: every provider but local)"
    )
    api.add_argument("--nats", metavar="URL", help="use this NATS deployment; start no stack")
    api.add_argument("--log-dir", type=Path, help="service logs here (default: warnings on stderr)")
    api.add_argument("--debug", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``massgen`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from massgen_kit.runtime import no_pydantic_plugins

    no_pydantic_plugins()  # here and in every process the command starts
    if argv and argv[0] in SUBCOMMANDS:
        return _subcommand(argv)
    args = _parser().parse_args(argv)
    from massgen_kit.runtime import mark

    mark("cli: arguments parsed")
    from .commands import ask

    return ask.main(args)


def _subcommand(argv: list[str]) -> int:
    """Dispatch ``massgen SUBCOMMAND ...`` to its module."""
    if argv[0] == "eval":  # the evals package parses its own arguments
        from .evals.cli import main as eval_main

        return eval_main(argv[1:])
    args = _subcommand_parser().parse_args(argv)
    match args.command:
        case "runs":
            from .commands import runs

            return runs.main(args)
        case "serve":
            from .commands.serve import serve_api

            return serve_api(args)
        case "up":
            from .commands import stack

            return stack.up(args)
        case "down":
            from .commands import stack

            return stack.down(args)
        case "status":
            from .commands import stack

            return stack.status(args)
        case other:
            raise AssertionError(f"unhandled subcommand {other!r}")


if __name__ == "__main__":
    sys.exit(main())

"""``massgen [options] ["question"]``: ask a team, on a warm or embedded stack or ``--api``.

With a question: one run (``--session ID``: one more turn of that session). Without:
an interactive session (:mod:`.interactive`). With ``--api URL``: the run goes to a
remote deployment over HTTP.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exits import EXIT_OK, fail

if TYPE_CHECKING:
    import argparse

    from ..targets import ApiTarget
    from ..teams import Team

__all__ = ["main"]

# asyncio, the targets and the run flow are imported once the worker and nats-server
# of a stack of this command's own are started (``main``): they start meanwhile.


def main(args: argparse.Namespace) -> int:
    """The question command, its options parsed."""
    if args.list_examples:
        return _list_examples()
    from ..environment import load_dotenv

    load_dotenv()
    if args.api:
        return _api_main(args)
    if args.team or args.token:
        return fail("--team and --token go with --api URL")
    from massgen_kit.runtime import import_lean, mark

    from .. import early_worker, warm

    # Start-up is mostly imports: no cyclic GC until the stack is reached (StackTarget.start).
    gc.disable()
    # In a terminal, a command that runs on a stack of its own also starts the warm
    # stack in the background, for the next commands (StackTarget does it).
    args.background = warm.background_allowed(no_daemon=args.no_daemon, embedded=args.embedded)
    if args.embedded or (warm.find_warm_stack(_say) is None and warm.starting_stack() is None):
        # A stack of our own is likely: start its worker (whose imports take as long as
        # this command's) and nats-server now; both die with this process.
        early_worker.start()
        mark("cli: worker and nats-server spawned")
    try:
        # Every run on a stack needs nats-py: without its unused websocket transport.
        import_lean("nats", "nats.js")
        return _question_main(args)
    finally:
        early_worker.discard()
        gc.enable()  # when the command ended before reaching a stack


def _say(text: str) -> None:
    print(f"massgen: {text}", file=sys.stderr, flush=True)


def _list_examples() -> int:
    from ..bundled import examples

    for name, (_path, description) in examples().items():
        print(f"{name:<28} {description}")
    print('\nuse one with: massgen --config NAME "question"')
    return EXIT_OK


def _team(args: argparse.Namespace) -> Team | int:
    """The resolved team, or the exit code after saying what is wrong."""
    from ..teams import resolve_team

    try:
        team = resolve_team(args)
    except ValueError as error:
        # Imported only now: a remembered config needs no config models at all.
        from massgen_proto.config import ConfigError

        if isinstance(error, ConfigError):
            return fail(f"config error:\n{error}")
        return fail(str(error))
    if (team.config.get("ui") or {}).get("logging_enabled") is False:
        args.no_logs = True  # the config's own "no log folder", as --no-logs
    return team


def _question_main(args: argparse.Namespace) -> int:
    """A question or an interactive session, on a warm or embedded stack."""
    session = _open_session(args) if args.session else None
    if isinstance(session, int):
        return session
    team = _team(args)
    if isinstance(team, int):
        return team
    config = team.config
    from massgen_kit.runtime import mark

    mark("cli: config resolved")
    from ..teams import missing_keys

    missing = missing_keys(config)
    if missing:
        return fail("missing API keys:\n  " + "\n  ".join(missing))
    if team.note:
        print(f"massgen: {team.note}", file=sys.stderr)
    from ..notices import print_warnings

    print_warnings(team.warnings)  # keys accepted but not applied
    if args.question is None:
        if args.output == "json":
            return fail("--output json needs a question")
        from .interactive import interactive

        if session is None:
            session = _new_session(args)
        return _run(interactive(args, config, session))
    if session is not None:
        return _run(_session_turn(args, team, session, args.question))
    return _run(_single(args, team, args.question))


def _run(main: Any) -> int:
    import asyncio

    return asyncio.run(main)


def _open_session(args: argparse.Namespace) -> Any:
    """The ``--session`` to resume (its team options fill in those not given), or the
    exit code after saying it was not found."""
    from ..session import Session, SessionNotFound, default_session_root

    try:
        session = Session.open(default_session_root(), args.session)
    except SessionNotFound as error:
        return fail(str(error))
    source = session.meta.get("source") or {}
    if not args.config and not args.model:
        for key in ("config", "model", "backend", "base_url", "system_message"):
            if source.get(key) and not getattr(args, key):
                setattr(args, key, source[key])
    return session


def _new_session(args: argparse.Namespace) -> Any:
    from ..session import Session, default_session_root

    source = {
        "config": str(Path(args.config).resolve())
        if args.config and Path(args.config).exists()
        else args.config,
        "model": args.model, "backend": args.backend,
        "base_url": args.base_url, "system_message": args.system_message,
    }  # fmt: skip
    return Session.create(default_session_root(), source)


async def _single(args: argparse.Namespace, team: Team, question: str) -> int:
    """``massgen "question"``: one run; the stack's own logs go with it (one folder)."""
    from massgen_proto.code_text import task_examples
    from massgen_proto.ids import new_run_id

    from ..runlog import default_log_root, run_log_dir
    from ..targets import StackTarget
    from .turn import run_on, run_turn

    run_id = new_run_id()
    folder = None if args.no_logs else run_log_dir(args.log_dir or default_log_root(), run_id)
    target = StackTarget(
        team.config, folder, embedded=args.embedded, debug=args.debug,
        background=args.background, team=team, checks=bool(task_examples(question)),
    )  # fmt: skip

    async def body() -> int:
        code, _summary, _log_dir = await run_turn(
            target, args, question, run_id=run_id, folder=folder
        )
        return code

    return await run_on(target, args, folder, body)


async def _session_turn(args: argparse.Namespace, team: Team, session: Any, question: str) -> int:
    """``massgen --session ID "question"``: one more turn of a saved session."""
    from massgen_proto.code_text import task_examples

    from ..targets import StackTarget
    from .turn import run_on, run_session_turn

    target = StackTarget(
        team.config, session.directory, embedded=args.embedded, debug=args.debug,
        background=args.background, team=team, checks=bool(task_examples(question)),
    )  # fmt: skip

    async def body() -> int:
        code, _summary, _log_dir = await run_session_turn(
            target, args, session, question, interactive=False
        )
        return code

    return await run_on(target, args, session.directory, body)


# -- a remote deployment (--api) -------------------------------------------------------


def _api_main(args: argparse.Namespace) -> int:
    """``massgen --api URL "question"``: the same run, display and log folder, over HTTP."""
    if args.question is None:
        return fail("--api needs a question (interactive sessions run on a local stack)")
    if args.session or args.embedded or args.no_daemon:
        return fail("--session, --embedded and --no-daemon do not go with --api")
    given = [f"--{name}" for name in ("config", "model", "team") if getattr(args, name)]
    if len(given) > 1:
        return fail(f"{' and '.join(given)} are exclusive: give one")
    if not given:
        return fail(
            "--api needs a team: --config FILE, --model MODEL, or --team NAME "
            "(a team configured on the server, GET /v1/teams)"
        )
    config = None
    if not args.team:
        team = _team(args)
        if isinstance(team, int):
            return team
        config = team.config
    token = args.token or os.environ.get("MASSGEN_API_TOKEN") or None
    return _run(_api_single(args, config, token, args.question))


async def _api_single(
    args: argparse.Namespace, config: dict[str, Any] | None, token: str | None, question: str
) -> int:
    from ..targets import ApiTarget
    from .turn import run_on

    target = ApiTarget(args.api, token, config, args.team)
    # No log folder: nothing of ours logs, and stdout stays clean.
    return await run_on(target, args, None, lambda: _api_run(target, args, question))


async def _api_run(target: ApiTarget, args: argparse.Namespace, question: str) -> int:
    from ..api_client import ApiError
    from ..notices import print_warnings
    from ..runlog import default_log_root, run_log_dir
    from .turn import run_turn

    try:
        run_id = await target.create(question)
    except ApiError as error:
        return fail(f"the API refused the run: {error}")
    print(f"massgen: run {run_id} on {target.api.url}", file=sys.stderr, flush=True)
    print_warnings(target.warnings)  # the API's view of the config
    # The log folder is named after the server's run id (massgen runs show ID).
    folder = None if args.no_logs else run_log_dir(args.log_dir or default_log_root(), run_id)
    code, _summary, _log_dir = await run_turn(target, args, question, run_id=run_id, folder=folder)
    return code

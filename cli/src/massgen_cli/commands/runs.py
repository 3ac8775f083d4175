"""``massgen runs list | show RUN [--table] | replay RUN [--speed X]``: runs on disk."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..exits import EXIT_OK, fail

__all__ = ["main"]


def main(args: argparse.Namespace) -> int:
    """List the runs under the log root, show one, or replay its events live."""
    from .. import runs
    from ..runlog import default_log_root

    root = args.log_dir or default_log_root()
    if args.action == "list":
        return runs.print_run_list(root, sys.stdout)
    try:
        run = runs.find_run(root, args.run)
    except runs.RunNotFound as error:
        return fail(str(error))
    if args.action == "show":
        return runs.show_run(run, sys.stdout, table=args.table, cost=not args.no_cost)
    from ..display import choose_display_type, make_display

    events = runs.load_events(run.path)
    if not events:
        return fail(f"{run.path}: no events recorded")
    clock = runs.ReplayClock(args.speed)
    kind = choose_display_type(args.display, False, None, sys.stdout)
    display = make_display(kind, sys.stdout, clock=clock)
    asyncio.run(runs.replay(events, display, clock, speed=args.speed))
    return EXIT_OK

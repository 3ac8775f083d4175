"""One run of a question on a target (live display, log folder, Ctrl-C, the result), and
the one flow every question command follows: open the target, run, close it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ..exits import EXIT_CANCELLED, EXIT_OK, EXIT_RUN_FAILED, fail
from ..targets import RunTarget, TargetUnavailable, opened

__all__ = ["run_on", "run_session_turn", "run_turn"]


async def run_on(
    target: RunTarget,
    args: argparse.Namespace,
    log_folder: Path | None,
    body: Callable[[], Awaitable[int]],
) -> int:
    """Open ``target`` (logging, start), await ``body``, close it; the exit code.

    A target that does not start or stops answering ends the command with its
    reason and exit code 3.
    """
    try:
        async with opened(target, debug=args.debug, log_folder=log_folder):
            return await body()
    except TargetUnavailable as error:
        return fail(str(error), EXIT_RUN_FAILED)


def _display_kind(args: argparse.Namespace, config: dict[str, Any], stream: TextIO) -> str:
    from ..display import choose_display_type

    ui = config.get("ui") or {}
    configured = ui.get("display_type") or ui.get("type")
    return choose_display_type(args.display, args.no_display, configured, stream)


async def run_turn(
    target: RunTarget,
    args: argparse.Namespace,
    question: str,
    history: list[Any] | None = None,
    interactive: bool = False,
    run_id: str | None = None,
    folder: Path | None = None,
    previous_run_id: str | None = None,
) -> tuple[int, Any, Path | None]:
    """Run one question: display, log folder, Ctrl-C.

    Args:
        target: where the run goes (started).
        args: the command's options (display, output, logs, debug).
        question: the question.
        history: earlier turns of a session.
        interactive: Ctrl-C cancels "this turn" rather than "the run".
        run_id: the run's id when already named (else the target names it).
        folder: the run's log folder when already chosen (else one under the log root).
        previous_run_id: a session's previous turn, whose final workspace the agents
            start from.

    Returns:
        (exit code, run summary or None when refused, log folder or None).
    """
    from ..client import RunRefused
    from ..display import make_display, showing

    run_id = run_id or await target.create(question)
    log_dir, runlog = _run_log(target, args, run_id, folder)
    stream = sys.stderr if args.output == "json" else sys.stdout
    kind = _display_kind(args, target.config, stream)
    display = make_display(kind, stream)
    if args.debug and log_dir is not None:
        print(f"massgen: debug logs for this run in {log_dir}", file=sys.stderr)

    def on_event(event: Any) -> None:
        if runlog is not None:
            runlog.write(event)
        display(event)

    cancel = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, _on_sigint(cancel, interactive))
    try:
        async with showing(display):
            summary = await target.follow(
                question, on_event, history=history, run_id=run_id, cancel=cancel,
                previous_run_id=previous_run_id,
            )  # fmt: skip
    except RunRefused as error:
        return fail(f"run refused: {error}"), None, log_dir
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if runlog is not None:
        runlog.close(summary)
    return await _finish(target, args, summary, run_id, log_dir, show_paths=kind != "final")


async def _finish(
    target: RunTarget,
    args: argparse.Namespace,
    summary: Any,
    run_id: str,
    log_dir: Path | None,
    show_paths: bool,
) -> tuple[int, Any, Path | None]:
    """Fetch the run's files, print the outcome; the exit code of the run's status."""
    artifacts = await _artifacts(target, run_id, log_dir)
    _report(target, args, summary, run_id, log_dir, show_paths=show_paths, files=artifacts)
    code = {"completed": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(summary.status, EXIT_RUN_FAILED)
    return code, summary, log_dir


def _run_log(
    target: RunTarget, args: argparse.Namespace, run_id: str, folder: Path | None
) -> tuple[Path | None, Any]:
    """The run's log folder (``folder``, else one under the log root; none with
    ``--no-logs``) and its writer, which starts with the config's warnings."""
    from ..runlog import RunLog, default_log_root, run_log_dir

    log_dir = folder or (
        None if args.no_logs else run_log_dir(args.log_dir or default_log_root(), run_id)
    )
    runlog = RunLog(log_dir) if log_dir is not None else None
    if runlog is not None:
        runlog.write_warnings(target.warnings)
    return log_dir, runlog


def _on_sigint(cancel: asyncio.Event, interactive: bool) -> Any:
    """Ctrl-C during a run: the first cancels it, a second leaves at once."""
    interrupts = 0

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            os._exit(EXIT_CANCELLED)  # a second Ctrl-C: leave at once
        what = "this turn" if interactive else "the run"
        print(f"\nmassgen: cancelling {what} (Ctrl-C again to quit at once)", file=sys.stderr)
        cancel.set()

    return on_sigint


async def _artifacts(target: RunTarget, run_id: str, log_dir: Path | None) -> list[Any]:
    """The run's media files, copied into its log folder (``artifacts``)."""
    from ..artifacts import collect, save

    found = await collect(target, run_id)
    if found and log_dir is not None:
        save(log_dir, found)
    return found


def _report(
    target: RunTarget,
    args: argparse.Namespace,
    summary: Any,
    run_id: str,
    log_dir: Path | None,
    *,
    show_paths: bool,
    files: Sequence[Any] = (),
) -> None:
    """The result object (``--output json``), or where the logs and table are; the run's
    artifacts with their sizes either way."""
    from .. import previews
    from ..artifacts import FOLDER

    if args.output == "json":
        result = summary.to_json(log_dir=str(log_dir) if log_dir else None)
        result["stack"] = target.kind  # warm, embedded or api
        if target.warnings:
            result["warnings"] = target.warnings
        if files:
            result["artifacts"] = [
                {"path": f.path, "mime": f.mime, "size": f.size,
                 "file": str(log_dir / FOLDER / f.path) if log_dir else None}
                for f in files
            ]  # fmt: skip
        print(json.dumps(result, indent=2))
        return
    # Named with size; pictures previewed too where the terminal shows images.
    previews.write(list(files), log_dir, sys.stderr, os.environ)
    if log_dir is not None and show_paths:
        print(f"logs: {log_dir}", file=sys.stderr)
        print(f"coordination table: massgen runs show {run_id} --table", file=sys.stderr)


async def run_session_turn(
    target: RunTarget,
    args: argparse.Namespace,
    session: Any,
    question: str,
    *,
    interactive: bool,
) -> tuple[int, Any, Path | None]:
    """One turn of a session: :func:`run_turn` with its history and the previous turn's
    final workspace, then recorded in it."""
    from ..session import TurnRecord

    number = session.next_number()
    started = time.monotonic()
    code, summary, log_dir = await run_turn(
        target, args, question, history=session.history(), interactive=interactive,
        previous_run_id=session.previous_run_id(),
    )  # fmt: skip
    if summary is not None:
        session.record(
            TurnRecord(
                number=number, question=question, answer=summary.final_answer,
                status=summary.status, winner=summary.winner, run_id=summary.run_id,
                log_dir=str(log_dir) if log_dir else None,
                seconds=round(time.monotonic() - started, 2),
            )
        )  # fmt: skip
    return code, summary, log_dir

"""Run the local model server: ``python -m massgen_local_model --model NAME --port 0``.

Prints one JSON line ``{"base_url": ..., "model": ...}`` to stdout when ready, then
serves until SIGTERM or SIGINT. Logs and progress go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

import structlog

from .registry import DEFAULT_MODEL, MODELS, LocalModelError
from .server import start_local_model


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="massgen-local-model", description="OpenAI-compatible local model server"
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"one of {', '.join(MODELS)} or a path to a .gguf file (default {DEFAULT_MODEL})",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--parallel", type=int, default=3, help="concurrent slots")
    parser.add_argument("--ctx-per-slot", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        handle = start_local_model(
            args.model,
            n_parallel=args.parallel,
            ctx_per_slot=args.ctx_per_slot,
            threads=args.threads,
            host=args.host,
            port=args.port,
        )
    except LocalModelError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    with handle:
        sys.stdout.write(json.dumps({"base_url": handle.base_url, "model": handle.model_alias}))
        sys.stdout.write("\n")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

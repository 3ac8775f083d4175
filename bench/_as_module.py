"""``python bench/bench_x.py`` run as ``python -m bench.bench_x``.

A benchmark imports the helpers it shares with the tests (``tests.support``), the
scripts (``scripts.cluster``) and its neighbours (``bench.proctree``) by their package
names, which resolve from the repository root. Run as a file, a benchmark calls
``run_as_module(__file__)`` first: the process becomes the same interpreter, with the
same flags and arguments, running the module, with the root first on ``PYTHONPATH``.
Imported as a module (``python -m``, ``run_all.py``, a test), it does nothing of this.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[1]


def run_as_module(file: str) -> NoReturn:
    """Replace this process by ``python [flags] -m bench.<file's name> [arguments]``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    flags = sys.orig_argv[1 : len(sys.orig_argv) - len(sys.argv)]
    module = f"bench.{Path(file).stem}"
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *flags, "-m", module, *sys.argv[1:]], env)

"""Run a command and measure its whole process tree: wall time, CPU time, peak memory."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TreeRun", "run_measured"]


@dataclass
class TreeRun:
    returncode: int
    stdout: str
    stderr: str
    wall_seconds: float
    cpu_seconds: float
    """User + system CPU of every child process that ended (the whole tree)."""
    peak_rss_mb: float
    """Largest sum of resident memory over the live tree, sampled every 100 ms."""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _tree_rss_bytes(root: int) -> int:
    total, stack, page = 0, [root], os.sysconf("SC_PAGE_SIZE")
    while stack:
        pid = stack.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        stack.extend(_children(pid))
    return total


def run_measured(command: list[str], timeout: float, **popen) -> TreeRun:
    """Run ``command`` to the end and measure it (CPU via RUSAGE_CHILDREN deltas)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.1):
            peak = max(peak, _tree_rss_bytes(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        done.set()
        sampler.join()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return TreeRun(proc.returncode, stdout, stderr, wall, cpu, peak / 2**20)

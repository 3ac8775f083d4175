"""Run every benchmark under bench/ and write their figures to BENCHMARKS.md.

Each ``bench_*.py`` runs as its own process (so one cannot warm another's caches)
and prints a Markdown section on stdout. ``python bench/run_all.py NAME ...`` runs
only the named ones and keeps the other sections of BENCHMARKS.md as they were.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "BENCHMARKS.md"
_SECTION = re.compile(r"^<!-- bench:(\S+) -->\n(.*?)^<!-- /bench:\1 -->\n", re.S | re.M)


def _existing_sections() -> dict[str, str]:
    if not OUT.exists():
        return {}
    return {m.group(1): m.group(2) for m in _SECTION.finditer(OUT.read_text(encoding="utf-8"))}


def main(names: list[str]) -> int:
    scripts = sorted((ROOT / "bench").glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    sections = _existing_sections()
    failed = []
    env = dict(os.environ, PYTHONPATH=str(ROOT), LITELLM_LOCAL_MODEL_COST_MAP="True")
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        print(f"== {name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{script.stem}"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        took = time.monotonic() - started
        if proc.returncode != 0:
            failed.append(name)
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            continue
        body = (
            proc.stdout.rstrip() + f"\n\n_measured {time.strftime('%Y-%m-%d')} in {took:.0f} s_\n"
        )
        sections[name] = body
    header = (
        "# Benchmarks\n\n"
        "Figures written by `make bench` (`python bench/run_all.py [NAME ...]`), each by the\n"
        "script named in its section. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.\n\n"
    )
    text = header + "".join(
        f"<!-- bench:{name} -->\n{body.rstrip()}\n<!-- /bench:{name} -->\n\n"
        for name, body in sorted(sections.items())
    )
    OUT.write_text(text, encoding="utf-8")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""How many MassGen team configs of a folder load, and why the others are refused.

    python bench/massgen_configs.py DIR [--json] [--list]

Walks ``DIR`` for ``*.yaml`` files (a checkout's ``massgen/configs``, or the corpus in
``../shared/reference/massgen-configs``), loads each with ``massgen_proto.config``, and
prints the count that loads, the count refused grouped by reason (the first problem of
each file, with a key path's list indices and a MassGen library tool's file name
dropped), and the warnings of loaded files. ``--list`` names every refused file;
``--json`` prints one JSON object instead. docs/config-compatibility.md has the figures
(133 of MassGen's 215 at its commit 304dbaa, kept in ``tests/data/massgen-configs``) and
the reason for each group.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from massgen_proto.config import ConfigError, load_config

_INDEX = re.compile(r"\[\d+\]")
_LIBRARY_FILE = re.compile(r"'(massgen/tool/[^/']+/)[^']*'")


def _group(text: str) -> str:
    """``text`` without what varies within one reason: list indices, tool file names."""
    return _LIBRARY_FILE.sub(r"'\1...'", _INDEX.sub("[]", text))


def measure(root: Path) -> dict[str, object]:
    """``{"total", "loaded", "refused": {reason: n}, "warnings": {warning: n}, "files"}``."""
    refused: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    files: dict[str, str] = {}
    loaded = 0
    paths = sorted(root.rglob("*.yaml"))
    for path in paths:
        name = path.relative_to(root).as_posix()
        try:
            config = load_config(path)
        except ConfigError as error:
            key, message = error.problems[0]
            refused[_group(f"{key or '<root>'}: {message}")] += 1
            files[name] = f"{key or '<root>'}: {message}"
            continue
        loaded += 1
        for warning in config.warnings():
            warnings[_group(warning)] += 1
    return {
        "total": len(paths),
        "loaded": loaded,
        "refused": dict(refused.most_common()),
        "warnings": dict(warnings.most_common()),
        "files": files,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="folder of MassGen configs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--list", action="store_true", help="name every refused file")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"not a folder: {args.root}", file=sys.stderr)
        return 2
    result = measure(args.root)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['loaded']} of {result['total']} configs load")
    print("refused:")
    for reason, count in result["refused"].items():  # type: ignore[union-attr]
        print(f"  {count:3d}  {reason[:150]}")
    print("warnings of loaded configs:")
    for warning, count in result["warnings"].items():  # type: ignore[union-attr]
        print(f"  {count:3d}  {warning[:150]}")
    if args.list:
        for name, reason in result["files"].items():  # type: ignore[union-attr]
            print(f"{name}: {reason[:120]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

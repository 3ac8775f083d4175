"""Config warnings: keys a config may hold that this project accepts but does not apply.

``RunConfig.warnings()`` names them; the command prints them on stderr before the run,
the log folder keeps them (``warnings.txt`` and ``status.json``), and a run made through
the HTTP API reports the API's own list (its create response).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

__all__ = ["config_warnings", "print_warnings"]


def config_warnings(config: Mapping[str, Any] | None) -> list[str]:
    """The warnings of a config mapping (none for an invalid or missing one: refused
    elsewhere, with the reason)."""
    if not config:
        return []
    from massgen_proto.config import ConfigError, parse_config

    try:
        return parse_config(dict(config)).warnings()
    except ConfigError:
        return []


def print_warnings(warnings: Iterable[str], stream: TextIO | None = None) -> None:
    """One ``massgen: warning: ...`` line per warning."""
    out = stream or sys.stderr
    for warning in warnings:
        print(f"massgen: warning: {warning}", file=out, flush=True)

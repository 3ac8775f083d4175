"""What a command sets up in its own process before it runs: ``.env`` keys and logging."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

__all__ = ["configure_logging", "load_dotenv"]


def load_dotenv() -> None:
    """Read ``./.env`` then ``~/.env`` into the environment (set variables win)."""
    files = [path for path in (Path.cwd() / ".env", Path.home() / ".env") if path.is_file()]
    if not files:
        return  # python-dotenv not even imported (it imports logging: ~20 ms)
    try:
        from dotenv import load_dotenv as load
    except ImportError:  # optional convenience
        return
    for path in files:
        load(path, override=False)


def configure_logging(debug: bool, folder: Path | None) -> IO[str] | None:
    """Send the in-process services' structlog lines to ``folder/services.log``.

    Args:
        debug: log at debug level (else info).
        folder: where ``services.log`` goes (created); None: nowhere (stdout stays clean).

    Returns:
        The open log file, for the caller to close when the command ends (None without
        a folder).
    """
    from massgen_kit.runtime import import_lean

    import_lean("structlog")  # without rich (the services' logs are JSON lines)
    from massgen_kit.logsetup import configure_logging as configure

    handle = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / "services.log").open("a", encoding="utf-8")
    configure("debug" if debug else "info", handle or open(os.devnull, "w"))  # noqa: SIM115
    return handle

"""Exit codes of the ``massgen`` command, and the one way a command fails with a message.

Exit codes are a public contract: 0 completed, 2 bad usage or config, 3 timed out or
failed, 130 cancelled with Ctrl-C.
"""

from __future__ import annotations

import sys

__all__ = ["EXIT_CANCELLED", "EXIT_OK", "EXIT_RUN_FAILED", "EXIT_USAGE", "fail"]

EXIT_OK, EXIT_USAGE, EXIT_RUN_FAILED, EXIT_CANCELLED = 0, 2, 3, 130


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print ``massgen: MESSAGE`` on stderr and return ``code`` (the command's exit code)."""
    print(f"massgen: {message}", file=sys.stderr)
    return code

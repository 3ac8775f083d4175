"""Process start-up and exit helpers shared by the entry points.

Start-up time matters (a ``massgen`` command waits for its worker), and a Python
process loading litellm builds millions of long-lived objects: the cyclic garbage
collector would walk them again and again while they are created, and again at
every full collection afterwards, for no garbage found.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["exit_now", "loaded", "loading_code"]


@contextmanager
def loading_code() -> Iterator[None]:
    """Pause the cyclic GC while imports run; then move what they built out of its way
    (see ``loaded``)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        loaded(enable=was_enabled)


def loaded(enable: bool = True) -> None:
    """End a start-up that began with ``gc.disable()``: everything alive now goes to a
    permanent generation that later collections skip, and collection resumes.
    Reference counting frees memory as usual throughout."""
    gc.freeze()
    if enable:
        gc.enable()


def exit_now(code: int = 0) -> None:
    """Flush logs and standard streams, then end the process without interpreter teardown.

    For a service whose connections are already drained and closed: tearing down a
    large module graph (litellm) takes longer than all the useful work of stopping.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing left to save
            pass
    os._exit(code)

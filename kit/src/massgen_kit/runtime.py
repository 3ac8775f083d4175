"""Process start-up and exit helpers shared by the entry points.

Start-up time matters (a ``massgen`` command waits for its worker), and a Python
process loading litellm builds millions of long-lived objects: the cyclic garbage
collector would walk them again and again while they are created, and again at
every full collection afterwards, for no garbage found.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "UNUSED_EXTRAS",
    "exit_now",
    "import_lean",
    "loaded",
    "loading_code",
    "mark",
    "no_pydantic_plugins",
]

UNUSED_EXTRAS = ("aiohttp", "rich", "trio", "click", "pygments")
"""Optional packages that libraries look for when imported and the services never use:
nats-py's websocket transport (aiohttp, ~0.15 s with its TLS contexts), structlog's
pretty tracebacks (rich; logs are JSON), httpcore's trio backend (trio) and httpx's
command line (click, rich, pygments). Each of those libraries works without them."""

TRACE_ENV = "MASSGEN_STARTUP_TRACE"
"""A file path: every process of a stack appends its start-up steps there (``mark``)."""
_trace = os.environ.get(TRACE_ENV)


def mark(step: str) -> None:
    """Note ``step`` with the wall-clock time and this process's id in the file named by
    ``$MASSGEN_STARTUP_TRACE`` (benchmarks read it); nothing when unset."""
    if _trace:
        import time

        with open(_trace, "a") as out:
            out.write(f"{time.time():.6f} {os.getpid()} {step}\n")


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


def no_pydantic_plugins() -> None:
    """Tell pydantic (this process and its children) not to look for plugins.

    Looking reads the metadata of every installed distribution (the entry points) when
    the first model class is built: 0.05-0.1 s per process in a virtualenv with
    litellm. The services use no pydantic plugin. A ``PYDANTIC_DISABLE_PLUGINS`` the
    user set is kept.
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def import_lean(*modules: str) -> None:
    """Import ``modules`` as if the packages of :data:`UNUSED_EXTRAS` were not installed.

    Those not imported yet are hidden (``None`` in ``sys.modules``) for the duration, so
    the libraries' ``try: import x`` fall back at once, then shown again: a later import
    of one of them (the command's display imports rich) works as usual. Call it from the
    main thread before other threads import anything.
    """
    hidden = [name for name in UNUSED_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        for module in modules:
            __import__(module)  # the import statement's own path (``-X importtime`` sees it)
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def exit_now(code: int = 0) -> None:
    """Flush logs and standard streams, then end the process without interpreter teardown.

    For a service whose connections are already drained and closed: tearing down a
    large module graph (litellm) takes longer than all the useful work of stopping.
    """
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing left to save
            pass
    os._exit(code)

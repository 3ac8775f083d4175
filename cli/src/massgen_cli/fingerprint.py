"""Fingerprints that tell whether a warm stack runs this command's code and settings.

A background stack lives for minutes while the code under it may change (a ``git
pull``, an edit in an editable install, an upgrade). Each command compares two
fingerprints with the ones the stack recorded when it started:

- :func:`code_fingerprint`: the installed ``massgen*`` packages and their
  distribution metadata (whose folder names carry the versions), by path, size and
  modification time of every file, plus the interpreter. A stack whose code
  fingerprint differs is replaced, never used.
- :func:`env_fingerprint`: the environment variables the services read (provider keys
  and endpoints, service settings). A stack started with other keys is not used for a
  command that has different ones.

Standard library only, and cheap (a few hundred ``stat`` calls): it runs at the start
of every command. The checksums are for change detection, not security.
"""

from __future__ import annotations

import binascii
import os
import sys
from collections.abc import Iterator, Mapping

__all__ = ["CLI_ONLY_VARIABLES", "code_fingerprint", "env_fingerprint", "installed_version"]

_PREFIX = "massgen"

CLI_ONLY_VARIABLES = frozenset(
    {
        "MASSGEN_NO_DAEMON",
        "MASSGEN_DAEMON_IDLE",
        "MASSGEN_NO_WARM",
        "MASSGEN_RUNTIME_DIR",
        "MASSGEN_API_TOKEN",
        "MASSGEN_CODE_FINGERPRINT",
        "MASSGEN_STARTUP_TRACE",  # where start-up steps are noted (benchmarks)
        # Always set by whoever starts the services (not the user's choice).
        "LITELLM_LOCAL_MODEL_COST_MAP",
    }
)
"""Variables that do not change what a stack does: ``MASSGEN_*`` ones only the command
reads, and ones the launcher sets itself."""

_ENV_PREFIXES = ("MASSGEN_", "LITELLM_", "AZURE_OPENAI_", "OTEL_", "NATS_")
_ENV_SUFFIXES = ("_API_KEY", "_API_BASE", "_BASE_URL", "_API_VERSION", "_ENDPOINT", "_PROXY")
_ENV_NAMES = frozenset({"NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"})


_PACKAGES = (
    "massgen_cli", "massgen_proto", "massgen_kit", "massgen_worker", "massgen_orchestrator",
    "massgen_gateway", "massgen_api", "massgen_local_model",
)  # fmt: skip


def _package_roots() -> set[str]:
    """Folders of the installed massgen code: its packages and ``.dist-info`` folders.

    ``sys.path[0]`` (the script's folder, or the working folder with ``-m``) is left
    out, so the same installation gives the same fingerprint from any folder.
    Packages are located through the import system, which also finds editable
    installs that are not on ``sys.path``.
    """
    import importlib.util

    roots: set[str] = set()
    names = set(_PACKAGES)
    for entry in dict.fromkeys(sys.path[1:]):
        if not entry:
            continue
        try:
            with os.scandir(entry) as items:
                for item in items:
                    if item.name.startswith(_PREFIX) and item.is_dir():
                        if item.name.endswith((".dist-info", ".egg-info")):
                            roots.add(item.path)
                        elif item.name.isidentifier():
                            names.add(item.name)
        except OSError:  # a missing path entry or a zip file
            continue
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            roots.update(spec.submodule_search_locations or ())
    return roots


def _files(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every file under ``root`` (hidden ones and ``__pycache__`` skipped), with its stat."""
    todo = [root]
    while todo:
        folder = todo.pop()
        try:
            with os.scandir(folder) as items:
                for item in items:
                    if item.name.startswith(".") or item.name == "__pycache__":
                        continue  # tool caches (.ruff_cache...), editor files, bytecode
                    if item.is_dir(follow_symlinks=False):
                        todo.append(item.path)
                    elif item.name.endswith((".pyc", ".pyo")):
                        continue
                    else:
                        try:
                            yield item.path, item.stat()
                        except OSError:
                            continue
        except OSError:
            continue


def code_fingerprint() -> str:
    """A checksum of the installed massgen code (changes when any of its files does).

    Covers every ``massgen*`` package and ``.dist-info`` folder on ``sys.path`` (the
    editable installs' source folders included), each file's path, size and mtime
    (hidden files and folders, such as tool caches, and bytecode left out), and the
    interpreter's path and version. ``$MASSGEN_CODE_FINGERPRINT``, when set, is used
    instead (a packager's build id, or a test that must not see edits made elsewhere
    in the tree while it runs).
    """
    override = os.environ.get("MASSGEN_CODE_FINGERPRINT")
    if override:
        return override
    crc = binascii.crc32(f"{sys.executable}\0{sys.version}".encode())
    count = 0
    for root in sorted(_package_roots()):
        for path, stat in sorted(_files(root)):
            crc = binascii.crc32(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode(), crc)
            count += 1
    return f"{crc:08x}-{count}"


def env_fingerprint(env: Mapping[str, str] | None = None) -> str:
    """A checksum of the environment variables the services read (not their values).

    Provider keys and endpoints (``*_API_KEY``, ``*_BASE_URL``...), proxies and CA
    bundles, and the ``MASSGEN_*`` / ``LITELLM_*`` / ``NATS_*`` settings, except the
    ones only the command reads (:data:`CLI_ONLY_VARIABLES`).
    """
    env = os.environ if env is None else env
    crc = 0
    for name in sorted(env):
        upper = name.upper()
        if name in CLI_ONLY_VARIABLES:
            continue
        if upper.startswith(_ENV_PREFIXES) or upper.endswith(_ENV_SUFFIXES) or upper in _ENV_NAMES:
            crc = binascii.crc32(f"{name}={env[name]}\n".encode(), crc)
    return f"{crc:08x}"


def installed_version() -> str:
    """The installed ``massgen`` distribution's version (``unknown`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("massgen")
    except PackageNotFoundError:
        return "unknown"

"""MassGen 0.1.97 in a virtualenv of its own, beside the project, for side-by-side benchmarks.

MassGen is never a dependency of the project: it goes into ``.bench/massgen-venv``
(ignored by git through ``.bench/.gitignore``), not into the workspace venv.
``pip install massgen`` does not resolve here (resolution too deep), so the wheel is
installed with ``--no-deps`` and its dependencies from the pinned list beside this
file (``massgen_peer_requirements.txt``). A venv that already holds the right version
is reused as it is.

    from bench.massgen_peer import ensure_massgen
    peer = ensure_massgen()          # MassGenPeer(executable=..., version=...)
                                     # or raises PeerUnavailable(reason)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MASSGEN_VERSION",
    "MassGenPeer",
    "PeerUnavailable",
    "ensure_massgen",
    "installed_version",
]

ROOT = Path(__file__).resolve().parents[1]
MASSGEN_VERSION = "0.1.97"
DEFAULT_VENV = ROOT / ".bench" / "massgen-venv"
REQUIREMENTS = Path(__file__).with_name("massgen_peer_requirements.txt")
INSTALL_TIMEOUT = 1200.0
"""Seconds for each pip step (the pinned set is ~550 MB; ~30 s from a local mirror)."""


class PeerUnavailable(RuntimeError):
    """MassGen cannot be run here; ``str(error)`` says precisely why (the bench's skip reason)."""


@dataclass(frozen=True)
class MassGenPeer:
    executable: Path
    """The venv's ``massgen`` console script."""
    python: Path
    version: str
    installed_now: bool
    """True when this call installed it (pip byte-compiles at install time, so even the
    first run after an install imports from .pyc files)."""


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_version(venv: Path = DEFAULT_VENV) -> str | None:
    """MassGen's version in ``venv``, or None when there is no venv or no massgen in it."""
    python = _venv_python(venv)
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('massgen'))"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return probe.stdout.strip() if probe.returncode == 0 else None


def _last_lines(text: str, count: int = 3) -> str:
    lines = [
        line.strip()
        for line in text.splitlines()
        # the machine's pip config names local mirrors that may be absent: noise, not cause
        if line.strip() and "is ignored: it is neither a file nor a directory" not in line
    ]
    return " | ".join(lines[-count:]) or "(no output)"


def _step(what: str, command: list[str], say) -> None:
    say(f"massgen peer: {what}")
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
            env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"),
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise PeerUnavailable(f"{what}: no answer within {INSTALL_TIMEOUT:.0f} s") from error
    if done.returncode != 0:
        raise PeerUnavailable(
            f"{what} failed (exit {done.returncode}): {_last_lines(done.stderr + done.stdout)}"
        )


def ensure_massgen(
    venv: Path = DEFAULT_VENV, *, install: bool = True, say=lambda text: None
) -> MassGenPeer:
    """MassGen ``MASSGEN_VERSION`` in ``venv``: reused when present, else installed.

    Args:
        venv: where the peer virtualenv lives.
        install: False: never install, only reuse (raises when it is not there).
        say: progress callback (one line of text per step).

    Raises:
        PeerUnavailable: it is not installed and cannot be (the message says why).
    """
    found = installed_version(venv)
    if found == MASSGEN_VERSION:
        return MassGenPeer(venv / "bin" / "massgen", _venv_python(venv), found, False)
    if not install:
        raise PeerUnavailable(
            f"MassGen {MASSGEN_VERSION} is not installed in {venv} (found: {found or 'none'}) "
            "and installing was turned off"
        )
    if not REQUIREMENTS.exists():
        raise PeerUnavailable(f"the pinned dependency list {REQUIREMENTS} is missing")
    if sys.version_info[:2] != (3, 11):
        # The pinned set was frozen under 3.11; other versions need other wheels.
        say(f"massgen peer: warning: pins were frozen on Python 3.11, this is {sys.version}")
    venv.parent.mkdir(parents=True, exist_ok=True)
    ignore = venv.parent / ".gitignore"
    if venv.parent.resolve() == DEFAULT_VENV.parent and not ignore.exists():
        # only our own scratch folder (.bench/) ignores everything in it
        ignore.write_text("# benchmark scratch (peer virtualenvs, downloads): never committed\n*\n")
    if found is None and venv.exists():
        # A venv without massgen (an earlier install broke off): start it afresh.
        _step("clearing a broken venv", [sys.executable, "-m", "venv", "--clear", str(venv)], say)
    elif not venv.exists():
        _step(f"creating {venv}", [sys.executable, "-m", "venv", str(venv)], say)
    pip = [str(_venv_python(venv)), "-m", "pip"]
    with tempfile.TemporaryDirectory(prefix="massgen-dl-") as download:
        _step(
            f"pip download massgen=={MASSGEN_VERSION}",
            [*pip, "download", "--no-deps", "-q", f"massgen=={MASSGEN_VERSION}", "-d", download],
            say,
        )
        wheels = sorted(Path(download).glob("massgen-*.whl"))
        if not wheels:
            raise PeerUnavailable(f"pip download massgen=={MASSGEN_VERSION} gave no wheel")
        _step("pip install the massgen wheel (--no-deps)",
              [*pip, "install", "--no-deps", "-q", str(wheels[0])], say)  # fmt: skip
    _step(
        f"pip install --no-deps -r {REQUIREMENTS.name} (~120 pinned packages)",
        [*pip, "install", "--no-deps", "-q", "-r", str(REQUIREMENTS)],
        say,
    )
    found = installed_version(venv)
    if found != MASSGEN_VERSION:
        raise PeerUnavailable(f"after installing, {venv} reports massgen {found or 'missing'}")
    executable = venv / "bin" / "massgen"
    check = subprocess.run([str(executable), "--help"], capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        raise PeerUnavailable(
            f"massgen {found} is installed but `massgen --help` fails: {_last_lines(check.stderr)}"
        )
    return MassGenPeer(executable, _venv_python(venv), found, True)

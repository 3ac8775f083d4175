"""Run a stdio MCP server inside a bubblewrap sandbox (pure: builds the command line).

In a shared deployment the gateway holds NATS credentials and every tenant's
workspaces; a tool server it starts must see neither. The sandbox gives the server:

- its own PID, IPC, UTS, user, cgroup and (unless the catalog allows egress) network
  namespaces: no ``/proc/<gateway>/environ``, no signals to the gateway, no sockets;
- an empty environment plus the catalog's variables (the gateway's are not inherited);
- the filesystem read-only, with the workspaces root hidden and only the calling agent's
  own workspace mounted read-write (and a private ``/var/tmp`` as its ``TMPDIR``);
- an unprivileged user inside (uid/gid 65534).

CPU time and memory are bounded with ``prlimit`` when it is available.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SANDBOX_PATH", "sandboxed", "sandbox_available"]

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


def sandbox_available() -> bool:
    """True when bubblewrap is installed."""
    return shutil.which("bwrap") is not None


def sandboxed(
    command: str,
    args: list[str] | tuple[str, ...],
    *,
    workspace: Path,
    hidden: list[Path],
    env: Mapping[str, str],
    network: bool = False,
    cpu_seconds: int | None = None,
    memory_bytes: int | None = None,
) -> tuple[str, list[str]]:
    """``(command, args)`` that run ``command args`` in the sandbox.

    Args:
        workspace: the agent's workspace, the only writable folder (and the cwd).
        hidden: folders replaced by empty ones (e.g. the root of every run's workspaces).
        env: the whole environment the server gets (``PATH`` and ``HOME`` are added).
        network: keep the network namespace (egress then depends on the pod's policy).
        cpu_seconds / memory_bytes: ``prlimit`` bounds, when prlimit exists.
    """
    bwrap = shutil.which("bwrap") or "bwrap"
    line = [
        "--die-with-parent", "--new-session",
        "--unshare-all", *(["--share-net"] if network else []),
        "--uid", "65534", "--gid", "65534",
        "--ro-bind", "/", "/",
        # A private, writable temp folder. Not over /tmp itself: the server's own code
        # (a checkout, a virtualenv) may live there.
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/var/tmp",
    ]  # fmt: skip
    for folder in hidden:
        if folder.exists():
            line += ["--tmpfs", str(folder)]
    line += ["--bind", str(workspace), str(workspace), "--chdir", str(workspace), "--clearenv"]
    full_env = {"PATH": SANDBOX_PATH, "HOME": str(workspace), "TMPDIR": "/var/tmp", **env}
    for key, value in full_env.items():
        line += ["--setenv", key, value]
    line.append("--")
    prlimit = shutil.which("prlimit")
    if prlimit and (cpu_seconds or memory_bytes):
        line.append(prlimit)
        if cpu_seconds:
            line.append(f"--cpu={cpu_seconds}")
        if memory_bytes:
            line.append(f"--as={memory_bytes}")
        line.append("--")
    line += [command, *args]
    return bwrap, line

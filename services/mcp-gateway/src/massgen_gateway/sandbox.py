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

Commands and custom tools (``confined``) get a narrower view: no host folder is visible
unless listed — ``/usr`` (and the ``/bin``, ``/lib`` ... links into it), a few
``/etc`` files programs need to start, the Python installation the gateway runs on,
and the folders the agent's permissions grant (its workspace read-write, the
reference snapshots and context paths read-only). Everything else, ``/etc/shadow``,
``/root``, ``/home``, other runs, the gateway's code and secrets, does not exist there.
A gateway running as root maps the sandbox user to root outside, so a file's mode
would not keep it private; not mounting it does.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SANDBOX_PATH",
    "Mount",
    "confined",
    "fresh_proc",
    "proc_args",
    "python_roots",
    "sandbox_available",
    "sandboxed",
]

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"

ROOT_SECRETS = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
    "/etc/sudoers.d", "/etc/ssh", "/root/.ssh", "/root/.gnupg", "/root/.aws", "/root/.docker",
    "/root/.kube", "/root/.config", "/root/.netrc", "/root/.bash_history", "/var/lib/sudo",
)  # fmt: skip
"""Blanked in a catalog server's sandbox when the gateway runs as root (see ``sandboxed``)."""


def sandbox_available() -> bool:
    """True when bubblewrap is installed."""
    return shutil.which("bwrap") is not None


@functools.cache
def fresh_proc() -> bool:
    """Whether bubblewrap may mount a new ``/proc`` here (probed once per process).

    Not in a container whose own ``/proc`` is masked (Kubernetes' default ``procMount``):
    the kernel then refuses a new procfs in a user namespace. The sandbox then gets an
    empty ``/proc``; never the container's, which would show the gateway's processes.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return True  # no sandbox at all: the callers refuse on their own
    try:
        done = subprocess.run(
            [bwrap, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--", "true"],
            capture_output=True, timeout=20, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return True
    return done.returncode == 0 or b"mount proc" not in done.stderr.lower()


def proc_args() -> list[str]:
    """The sandbox's ``/proc``: a fresh one for its own PID namespace where allowed."""
    return ["--proc", "/proc"] if fresh_proc() else ["--tmpfs", "/proc"]


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
        *proc_args(), "--dev", "/dev", "--tmpfs", "/var/tmp",
    ]  # fmt: skip
    for folder in hidden:
        if folder.exists():
            line += ["--tmpfs", str(folder)]
    if os.geteuid() == 0:
        # Run by root, the sandbox user is root outside: file modes no longer keep the
        # host's own secrets private, so the well-known ones are blanked.
        for secret in ROOT_SECRETS:
            if os.path.isdir(secret) and not os.path.islink(secret):
                line += ["--tmpfs", secret]
            elif os.path.isfile(secret):
                line += ["--ro-bind", "/dev/null", secret]
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


# -- commands and custom tools: an allowlist view of the host ---------------------------

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Shown read-only (as the links they are on merged-/usr systems)."""
ETC_ENTRIES = (
    "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "ld.so.cache", "ld.so.conf",
    "ld.so.conf.d", "localtime", "timezone", "alternatives", "ssl", "ca-certificates",
    "mime.types", "magic", "magic.mime", "os-release", "debian_version", "locale.alias",
    "protocols", "services", "inputrc", "bash.bashrc", "profile", "resolv.conf",
)  # fmt: skip
"""The ``/etc`` entries programs read to start (and ``resolv.conf``, for a command given
the network); the rest of ``/etc`` is not shown."""


@dataclass(frozen=True, slots=True)
class Mount:
    """A host path shown inside the sandbox at the same place."""

    path: str
    writable: bool = False


def python_roots() -> list[str]:
    """Folders of the Python the gateway runs on (interpreter, stdlib, its virtualenv)."""
    roots = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(r for r in roots if r and not r.startswith("/usr/"))


def _depth(path: str) -> int:
    return 0 if path == "/" else path.rstrip("/").count("/")


def confined(
    argv: list[str],
    *,
    mounts: Iterable[Mount],
    workdir: str,
    env: Mapping[str, str],
    tmp_bytes: int,
    max_processes: int | None = None,
    readable: Iterable[str] = (),
    hidden: Iterable[str] = (),
    network: bool = False,
) -> list[str]:
    """The bwrap command line that runs ``argv`` with only ``mounts`` (and the system
    folders) visible, no network, a private ``/tmp`` of ``tmp_bytes``, a read-only
    root, ``workdir`` as the current folder and exactly ``env`` as the environment.

    Args:
        mounts: granted paths (the workspace writable, the rest read-only); a missing
            read-only path is skipped.
        readable: more host folders to show read-only (the Python installation, an
            operator's ``/opt/...``).
        max_processes: RLIMIT_NPROC set inside the sandbox's user namespace (``prlimit``),
            where the kernel counts only the sandbox's own processes.
        hidden: folders replaced by empty read-only ones wherever a readable or granted
            folder would show them (the root of every run's workspaces); granted paths
            inside them are mounted on top.
        network: keep the gateway's network namespace (a command whose config asks for
            network, where the gateway allows it); everything else stays unshared.
    """
    bwrap = shutil.which("bwrap") or "bwrap"
    line = [
        bwrap, "--die-with-parent", "--new-session", "--unshare-all",
        *(["--share-net"] if network else []),
        "--hostname", "sandbox", "--uid", "65534", "--gid", "65534",
    ]  # fmt: skip
    hidden = [h for h in hidden if os.path.isdir(h)]
    line += _mount_args(mounts, tmp_bytes, readable, hidden)
    line += ["--remount-ro", "/"]
    for path in hidden:
        line += ["--remount-ro", path]
    line += ["--chdir", workdir, "--clearenv"]
    for key, value in env.items():
        line += ["--setenv", key, value]
    line.append("--")
    prlimit = shutil.which("prlimit")
    if prlimit and max_processes and prlimit.startswith(("/usr/", "/bin/", "/sbin/")):
        line += [prlimit, f"--nproc={max_processes}", "--"]
    return line + list(argv)


def _mount_args(
    mounts: Iterable[Mount], tmp_bytes: int, readable: Iterable[str], hidden: list[str]
) -> list[str]:
    """The bwrap arguments that build the sandbox's file system (see ``confined``)."""
    # (depth, order, arguments): a folder is mounted before anything inside it, so a
    # granted folder under /tmp lands on the private tmpfs, not under it.
    ops: list[tuple[int, int, list[str]]] = []

    def add(path: str, args: list[str]) -> None:
        ops.append((_depth(path), len(ops), args))

    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):
            add(folder, ["--symlink", os.readlink(folder), folder])
        elif os.path.isdir(folder):
            add(folder, ["--ro-bind", folder, folder])
    add("/etc", ["--dir", "/etc"])
    for name in ETC_ENTRIES:
        if os.path.lexists(f"/etc/{name}"):
            add(f"/etc/{name}", ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"])
    add("/proc", proc_args())
    add("/dev", ["--dev", "/dev"])
    add("/tmp", ["--size", str(tmp_bytes), "--tmpfs", "/tmp"])
    add("/var", ["--dir", "/var"])
    add("/var/tmp", ["--symlink", "../tmp", "/var/tmp"])
    for path in readable:
        add(path, ["--ro-bind-try", path, path])
    for path in hidden:
        add(path, ["--size", "4096", "--tmpfs", path])
    for mount in mounts:
        if mount.writable:
            add(mount.path, ["--bind", mount.path, mount.path])
        else:
            add(mount.path, ["--ro-bind-try", mount.path, mount.path])
    line: list[str] = []
    for _, _, args in sorted(ops, key=lambda op: (op[0], op[1])):
        line += args
    return line

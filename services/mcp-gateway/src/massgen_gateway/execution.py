"""Run one bounded process (a command, a custom tool) and collect what it printed.

- **Limits** are set by a few lines of Python that run between the gateway and the
  process (``_TRAMPOLINE``): they join the call's pids cgroup, set the rlimits (CPU
  seconds, address space, file size, no core dumps) and ``exec`` the real program, so
  nothing runs in the gateway's own process after ``fork`` and no limit touches it.
- **Processes**: a pids cgroup per call when the gateway may create one (it counts
  every process of the call, also those of a gateway running as root, which the
  kernel's RLIMIT_NPROC ignores); the sandbox adds RLIMIT_NPROC inside its own user
  namespace (``sandbox.confined``).
- **Time**: after ``timeout`` seconds the whole call is killed: its process group, every
  process of its cgroup, and (sandboxed) the sandbox's PID namespace, which dies with
  bubblewrap.
- **Output**: stdout and stderr are read to the end (so a chatty program is not
  blocked), keeping the first and last ``output_bytes / 2`` of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from massgen_proto.json_types import JsonObject

from .sandbox import Mount, confined

__all__ = [
    "Capture",
    "Confinement",
    "ExecLimits",
    "ExecOutcome",
    "PidsCgroups",
    "run_limited",
    "sandbox_problem",
]

log = structlog.get_logger("massgen_gateway.execution")

_TRAMPOLINE = """
import json, os, resource, sys
spec = json.loads(sys.argv[1])
if spec["cgroup"]:
    with open(spec["cgroup"], "w") as procs:
        procs.write(str(os.getpid()))
for name, value in spec["limits"].items():
    resource.setrlimit(getattr(resource, name), (value, value))
os.execv(spec["argv"][0], spec["argv"])
"""
"""Runs as ``python -I -S -c``: joins the cgroup, sets the limits, becomes the program."""

KILL_GRACE = 2.0
"""Seconds to wait for the output pipes to close once the main process has ended
(background processes of an unsandboxed command may hold them) before killing them."""


@dataclass(frozen=True, slots=True)
class ExecLimits:
    """Bounds of one call (see ``GatewaySettings.exec_*``)."""

    timeout: float
    cpu_seconds: int
    memory_bytes: int
    file_bytes: int
    max_processes: int
    output_bytes: int

    def rlimits(self) -> dict[str, int]:
        """The rlimits the trampoline sets (RLIMIT_NPROC is set in the sandbox)."""
        return {
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_CORE": 0,
        }


@dataclass(frozen=True, slots=True)
class ExecOutcome:
    """What a call did."""

    exit_code: int | None
    """None when it was killed for running out of time."""
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    signal: int | None = None
    """The signal that ended it (negative return codes), if any."""


class Capture:
    """Keeps the first and last ``limit / 2`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.half = max(1, limit // 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        omitted = self.total - len(self.head) - len(self.tail)
        if omitted <= 0:
            return head + self.tail.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        return f"{head}\n[... {omitted} bytes omitted ...]\n{tail}"


class PidsCgroups:
    """One pids cgroup per call, under a cgroup of this gateway, when the host lets the
    gateway create cgroups (a root gateway with cgroupfs mounted writable); otherwise
    ``create`` returns None and the calls rely on RLIMIT_NPROC and the timeout."""

    def __init__(self) -> None:
        self._base: Path | None = None
        self._probed = False

    @property
    def available(self) -> bool:
        return self._ensure() is not None

    def _ensure(self) -> Path | None:
        if not self._probed:
            self._probed = True
            self._base = _make_base()
            log.info("exec_pids_cgroup", path=str(self._base) if self._base else None)
        return self._base

    def create(self, max_pids: int) -> Path | None:
        """A fresh cgroup limited to ``max_pids`` processes (None: not possible here)."""
        base = self._ensure()
        if base is None:
            return None
        path = base / f"call-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(max_pids))
        except OSError as error:
            log.warning("exec_pids_cgroup_failed", error=str(error))
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return path

    @staticmethod
    def kill(path: Path) -> None:
        """SIGKILL every process in the cgroup (cgroup v2's ``cgroup.kill`` or one by one)."""
        kill_file = path / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
            return
        for _ in range(3):  # a fork racing the kill is caught by the next round
            pids = _pids(path)
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    @classmethod
    async def remove(cls, path: Path) -> None:
        """Kill what is left and remove the cgroup (it must be empty first)."""
        deadline = time.monotonic() + 5.0
        while True:
            cls.kill(path)
            if _rmdir(path):
                return
            if time.monotonic() > deadline:
                log.warning("exec_cgroup_not_removed", path=str(path))
                return
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """Remove this gateway's cgroup folder (if it is empty)."""
        if self._base is not None:
            with contextlib.suppress(OSError):
                self._base.rmdir()
                self._base, self._probed = None, False  # made again if calls follow


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
        return True
    except OSError:
        return False


def _pids(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _make_base() -> Path | None:
    """``<pids hierarchy>/<this process's cgroup>/massgen-gateway-<pid>``, or None."""
    try:
        own = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    candidates: list[Path] = []
    for line in own:
        _, controllers, rel = line.split(":", 2)
        for mount in mounts:
            fields = mount.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[-1]
            point = Path(fields[4])
            if controllers == "pids" and fstype == "cgroup" and "pids" in options.split(","):
                candidates.append(point / rel.lstrip("/"))
            elif controllers == "" and fstype == "cgroup2":
                candidates.append(point / rel.lstrip("/"))
    for parent in candidates:
        base = parent / f"massgen-gateway-{os.getpid()}"
        try:
            base.mkdir(exist_ok=True)
        except OSError:
            continue
        if (base / "pids.max").exists() or _v2_children_limited(base):
            return base
        with contextlib.suppress(OSError):
            base.rmdir()
    return None


def _v2_children_limited(base: Path) -> bool:
    # cgroup v2: children get pids.max only when ``base`` delegates the pids controller.
    try:
        (base / "cgroup.subtree_control").write_text("+pids")
        return True
    except OSError:
        return False


async def run_limited(
    argv: list[str],
    *,
    limits: ExecLimits,
    env: Mapping[str, str],
    cwd: str | None = None,
    stdin: bytes | None = None,
    cgroups: PidsCgroups | None = None,
) -> ExecOutcome:
    """Run ``argv`` within ``limits``; never raises for what the program does.

    Args:
        argv: the program (for a sandboxed call, the whole bwrap command line).
        env: the environment of the launched process (not the gateway's).
        cwd: its folder (unsandboxed calls; bwrap sets its own).
        stdin: bytes fed to its standard input (then closed).
        cgroups: where to make the call's pids cgroup.

    Raises:
        OSError: the program could not be started at all.
    """
    cgroup = cgroups.create(limits.max_processes) if cgroups is not None else None
    spec: JsonObject = {
        "cgroup": str(cgroup / "cgroup.procs") if cgroup else None,
        "limits": limits.rlimits(),
        "argv": argv,
    }
    started = time.monotonic()
    proc = await _launch(spec, env=env, cwd=cwd, stdin=stdin, cgroup=cgroup)
    out, err = Capture(limits.output_bytes), Capture(limits.output_bytes)
    readers = asyncio.gather(_pump(proc.stdout, out), _pump(proc.stderr, err), _feed(proc, stdin))
    try:
        timed_out = await _wait(proc, readers, limits.timeout, cgroup)
    except BaseException:
        _kill(proc, cgroup)
        readers.cancel()
        with contextlib.suppress(BaseException):
            await proc.wait()
        raise
    finally:
        if cgroup is not None:
            await PidsCgroups.remove(cgroup)
    code = proc.returncode
    return ExecOutcome(
        exit_code=None if timed_out else code,
        stdout=out.text(),
        stderr=err.text(),
        seconds=time.monotonic() - started,
        timed_out=timed_out,
        signal=-code if code is not None and code < 0 else None,
    )


async def _launch(
    spec: JsonObject,
    *,
    env: Mapping[str, str],
    cwd: str | None,
    stdin: bytes | None,
    cgroup: Path | None,
) -> asyncio.subprocess.Process:
    """Start the trampoline that applies ``spec`` (cgroup, limits) and runs the program;
    when it cannot start, the call's cgroup is removed."""
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", "-c", _TRAMPOLINE, json.dumps(spec),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=cwd, env=dict(env), start_new_session=True,
        )  # fmt: skip
    except BaseException:
        if cgroup is not None:
            await PidsCgroups.remove(cgroup)
        raise


async def _pump(stream: asyncio.StreamReader | None, into: Capture) -> None:
    if stream is None:
        return
    while data := await stream.read(65536):
        into.feed(data)


async def _feed(proc: asyncio.subprocess.Process, stdin: bytes | None) -> None:
    if proc.stdin is None or stdin is None:
        return
    with contextlib.suppress(OSError):  # it may exit without reading
        proc.stdin.write(stdin)
        await proc.stdin.drain()
    with contextlib.suppress(OSError):
        proc.stdin.close()


def _kill(proc: asyncio.subprocess.Process, cgroup: Path | None) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        PidsCgroups.kill(cgroup)


async def _wait(
    proc: asyncio.subprocess.Process,
    readers: asyncio.Future[tuple[None, None, None]],
    seconds: float,
    cgroup: Path | None,
) -> bool:
    """Wait for the program (killed after ``seconds``), then for its output pipes
    (killing whatever still holds them). True when the program timed out."""
    timed_out = False
    try:
        async with asyncio.timeout(seconds):
            await proc.wait()
    except TimeoutError:
        timed_out = True
        _kill(proc, cgroup)
        await proc.wait()
    try:
        async with asyncio.timeout(KILL_GRACE):
            await asyncio.shield(readers)
    except TimeoutError:
        _kill(proc, cgroup)  # leftovers of an unsandboxed call hold the pipes open
        try:
            async with asyncio.timeout(KILL_GRACE):
                await asyncio.shield(readers)
        except TimeoutError:
            readers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readers
    return timed_out


@dataclass(frozen=True, slots=True)
class Confinement:
    """Where and how one agent's commands and custom tools run.

    ``sandboxed``: in bubblewrap, seeing only ``mounts`` (and the system folders and
    ``readable``); otherwise on the host in ``workdir`` (``unsandboxed_exec``), where
    only the limits, the environment and the command filters apply.
    """

    sandboxed: bool
    mounts: tuple[Mount, ...]
    readable: tuple[str, ...]
    limits: ExecLimits
    tmp_bytes: int
    cgroups: PidsCgroups | None = None
    hidden: tuple[str, ...] = ()
    """Folders shown empty (the root of all runs' workspaces)."""
    network: bool = False
    """Sandboxed, keep the gateway's network (``GatewaySettings.exec_network``)."""

    async def run(
        self,
        argv: list[str],
        *,
        workdir: str,
        env: Mapping[str, str],
        stdin: bytes | None = None,
        limits: ExecLimits | None = None,
    ) -> ExecOutcome:
        """Run ``argv`` in ``workdir`` with exactly ``env``.

        Raises:
            OSError: bubblewrap (or the program, unsandboxed) could not be started.
        """
        limits = limits or self.limits
        if self.sandboxed:
            line = confined(
                argv, mounts=self.mounts, workdir=workdir, env=env, tmp_bytes=self.tmp_bytes,
                max_processes=limits.max_processes, readable=self.readable, hidden=self.hidden,
                network=self.network,
            )  # fmt: skip
            # bwrap itself gets an empty environment too: nothing of the gateway's
            # reaches even the sandbox's init process.
            return await run_limited(
                line, limits=limits, env={"PATH": "/usr/bin:/bin"}, stdin=stdin,
                cgroups=self.cgroups,
            )  # fmt: skip
        return await run_limited(
            argv, limits=limits, env=env, cwd=workdir, stdin=stdin, cgroups=self.cgroups
        )


_PROBE: list[str | None] = []


async def sandbox_problem() -> str | None:
    """None when bubblewrap can build the command sandbox here, else why not (probed
    once per process: bwrap may be installed where namespaces are forbidden, as in a
    container under a default seccomp profile). Two first calls may both probe."""
    if _PROBE:
        return _PROBE[0]
    limits = ExecLimits(
        timeout=20, cpu_seconds=10, memory_bytes=1 << 30, file_bytes=1 << 20,
        max_processes=16, output_bytes=2000,
    )  # fmt: skip
    line = confined(
        ["/bin/sh", "-c", "exit 0"], mounts=(), workdir="/", env={"PATH": "/usr/bin"},
        tmp_bytes=1 << 20,
    )  # fmt: skip
    try:
        outcome = await run_limited(line, limits=limits, env={"PATH": "/usr/bin:/bin"})
        problem = None
        if outcome.exit_code != 0:
            detail = outcome.stderr.strip()[-300:] or f"exit code {outcome.exit_code}"
            problem = f"bubblewrap is installed but cannot build its sandbox here: {detail}"
    except OSError as error:
        problem = f"bubblewrap cannot be started: {error}"
    if not _PROBE:
        _PROBE.append(problem)
        log.info("exec_sandbox_probe", problem=problem)
    return _PROBE[0]

"""Run an untrusted code answer against its tests, contained.

Two processes per grading (``_sandbox_host.py``):

- the **solution process** runs the answer's code, and only that, inside the sandbox:
  bubblewrap (``bwrap``) with no network, its own PID/IPC/UTS namespaces, a file system
  of ``/usr`` (and the interpreter's own prefix) read-only, a private size-limited
  ``/sandbox`` tmpfs as its only writable folder, and nothing else of the machine (no
  ``/home``, ``/root``, ``/tmp``, ``/work``: no dataset file, no results folder). Run as
  root, it becomes ``nobody`` before reading the code. Limits: CPU seconds, address
  space, file size (its output is a file: flooding it kills the process), no new
  processes or threads (``RLIMIT_NPROC``), and a wall-clock timeout after which the
  whole process group is killed (with bwrap, the PID namespace dies with it).
- the **test process** runs the benchmark's tests with ``candidate`` as a proxy for the
  solution's function. Arguments and results cross a pipe as plain values, so the tests
  are never on the solution's disk or in its memory, and the verdict is written by the
  test process alone.

Without bwrap the solution process falls back to ``unshare --net --pid`` (root) or no
namespace at all, with the same limits and user switch but the machine's file system
readable: :attr:`Isolation.strong` says which, and ``massgen eval`` reports it.
``MASSGEN_EVAL_SANDBOX=bwrap|unshare|none`` forces a mode.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Isolation", "Limits", "Sandbox", "SandboxUnavailable", "Verdict", "detect", "probe"]

HOST = Path(__file__).with_name("_sandbox_host.py")
_SIGNALS = {
    signal.SIGXCPU: "CPU time limit",
    signal.SIGXFSZ: "output/file size limit",
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "crashed",
    signal.SIGABRT: "aborted",
}


class SandboxUnavailable(RuntimeError):
    """No way to run a solution here (not even the weakest mode works)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one grading."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    output_bytes: int = 1 << 20
    """Largest file the solution may write, its printed output included."""
    workdir_bytes: int = 16 << 20
    """Size of its private writable folder (bwrap only)."""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    """``passed``, or why not (the failing test line, the limit hit, the load error)."""
    output: str = ""
    """The start of what the solution printed."""


@dataclass(frozen=True)
class Isolation:
    """How solutions are contained on this machine (found once by :func:`detect`)."""

    kind: str
    """``bwrap``, ``unshare`` or ``none``."""
    python: str
    """Interpreter of the solution process (standard library only: run with ``-I -S``)."""
    uid: int = -1
    gid: int = -1
    """User the solution process becomes (-1: stays this process's user)."""

    @property
    def strong(self) -> bool:
        return self.kind == "bwrap"

    def describe(self) -> str:
        who = f", as uid {self.uid}" if self.uid >= 0 else ""
        if self.kind == "bwrap":
            return (f"bwrap (no network, own PID namespace, read-only /usr, private "
                    f"tmpfs{who}; python {self.python})")  # fmt: skip
        what = "unshare --net --pid" if self.kind == "unshare" else "no namespaces"
        return (f"{what}{who}, rlimits only: WEAK - the solution can read files this user "
                f"can read; install bubblewrap (bwrap) for the full sandbox")  # fmt: skip


def _drop_target() -> tuple[int, int]:
    if os.geteuid() != 0:
        return -1, -1
    try:
        import pwd

        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except (KeyError, ImportError):
        return 65534, 65534


def _pythons() -> list[str]:
    found: list[str] = []
    for candidate in (sys.executable, getattr(sys, "_base_executable", None),
                      shutil.which("python3"), "/usr/bin/python3"):  # fmt: skip
        if candidate and os.path.exists(candidate):
            real = os.path.realpath(candidate)
            if real not in found:
                found.append(real)
    return found


_detected: Isolation | None = None
_detect_lock = threading.Lock()

PROBE_SOLUTION = (
    "import collections, functools, itertools, math, re, string, traceback, typing\n"
    "def probe(x):\n    return [x + 1, {'k': (1.5, None)}]\n"
)
PROBE_TEST = "assert candidate(1) == [2, {'k': (1.5, None)}]\n"


def probe(kind: str, limits: Limits | None = None) -> tuple[Isolation | None, list[str]]:
    """Mode ``kind`` with the first interpreter that grades a known-good solution
    correctly, or None; and why each try failed."""
    if kind == "bwrap" and not shutil.which("bwrap"):
        return None, ["bwrap: not installed"]
    if kind == "unshare" and (not shutil.which("unshare") or os.geteuid() != 0):
        return None, ["unshare: needs root and util-linux"]
    if kind not in ("bwrap", "unshare", "none"):
        return None, [f"{kind}: unknown sandbox (bwrap, unshare, none)"]
    uid, gid = _drop_target()
    tried = []
    for python in _pythons():
        isolation = Isolation(kind, python, uid, gid)
        verdict = Sandbox(limits or Limits(), isolation=isolation).grade(
            PROBE_SOLUTION, PROBE_TEST, entry_point="probe"
        )
        if verdict.passed:
            return isolation, tried
        tried.append(f"{kind} with {python}: {verdict.reason}")
    return None, tried


def detect(limits: Limits | None = None) -> Isolation:
    """The strongest mode that works here (cached; ``MASSGEN_EVAL_SANDBOX`` forces one)."""
    global _detected
    with _detect_lock:
        if _detected is not None:
            return _detected
        forced = os.environ.get("MASSGEN_EVAL_SANDBOX", "").strip() or None
        tried: list[str] = []
        for kind in [forced] if forced else ["bwrap", "unshare", "none"]:
            isolation, failures = probe(kind, limits)
            tried += failures
            if isolation is not None:
                _detected = isolation
                return isolation
        raise SandboxUnavailable("cannot run solutions here:\n  " + "\n  ".join(tried))


class Sandbox:
    """Grades code: ``Sandbox().grade(solution, test, entry_point="f")`` -> :class:`Verdict`.

    Args:
        limits: resource limits of each grading.
        isolation: how to contain the solution (default: :func:`detect`).
        hide: files to mask inside the sandbox should a bound folder hold them.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        isolation: Isolation | None = None,
        hide: tuple[str, ...] = (),
    ) -> None:
        self.limits = limits or Limits()
        self._isolation = isolation
        self.hide = tuple(hide)

    @property
    def isolation(self) -> Isolation:
        if self._isolation is None:
            self._isolation = detect(self.limits)
        return self._isolation

    # -- commands -------------------------------------------------------------------

    def _solution_args(self, judge: str) -> list[str]:
        limits, iso = self.limits, self.isolation
        return [
            iso.python, "-I", "-S", f"{judge}/_sandbox_host.py", "solution",
            str(iso.uid), str(iso.gid), str(int(limits.cpu_seconds)),
            str(int(limits.memory_bytes)), str(int(limits.output_bytes)),
            f"{judge}/solution.py",
        ]  # fmt: skip

    def _bwrap(self, judge: str) -> list[str]:
        cmd = [
            "bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr",
        ]  # fmt: skip
        roots = ["/usr"]
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = f"/{name}"
            if os.path.islink(path):
                cmd += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                cmd += ["--ro-bind", path, path]
                roots.append(path)
        for path in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime"):
            cmd += ["--ro-bind-try", path, path]
        prefix = str(Path(self.isolation.python).parent.parent)
        if not any(prefix == r or prefix.startswith(r + "/") for r in roots):
            cmd += ["--ro-bind", prefix, prefix]  # e.g. a pyenv interpreter
            roots.append(prefix)
            # bwrap makes the folders above it 0700: the unprivileged user must pass.
            for parent in reversed(Path(prefix).parents[:-1]):
                cmd += ["--chmod", "0755", str(parent)]
        for path in self.hide:
            real = os.path.realpath(path)
            if any(real.startswith(r + "/") for r in roots) and os.path.exists(real):
                cmd += ["--tmpfs", real] if os.path.isdir(real) else ["--ro-bind", os.devnull, real]
        cmd += [
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(int(self.limits.workdir_bytes)), "--tmpfs", "/sandbox",
            "--chmod", "1777", "/sandbox",
            "--ro-bind", judge, "/judge", "--chdir", "/sandbox",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/sandbox",
            "--setenv", "TMPDIR", "/sandbox", "--setenv", "LANG", "C.UTF-8",
            "--setenv", "OPENBLAS_NUM_THREADS", "1",
            "--",
        ]  # fmt: skip
        return cmd + self._solution_args("/judge")

    # -- one grading ----------------------------------------------------------------

    def grade(
        self,
        solution: str,
        test: str,
        *,
        entry_point: str | None,
        prompt: str | None = None,
        bind_all: bool = False,
    ) -> Verdict:
        """Run ``solution``, then ``test`` against it (``check(candidate)`` when defined).

        Args:
            entry_point: the solution's function that ``candidate`` stands for.
            prompt: benchmark code run before the tests in the test process (HumanEval
                helpers such as ``poly``), never the solution's.
            bind_all: also give the tests every function the solution defines, by name
                (plain ``assert f(1) == 2`` tests).
        """
        root = Path(tempfile.mkdtemp(prefix="massgen-grade-"))
        procs: list[subprocess.Popen] = []
        fds: list[int] = []
        try:
            command, cwd, env, tests_dir = self._prepare(root, solution)
            to_solution_r, to_solution_w = os.pipe()
            from_solution_r, from_solution_w = os.pipe()
            fds += [to_solution_r, to_solution_w, from_solution_r, from_solution_w]
            with (
                (root / "solution-output.txt").open("wb") as out,
                (root / "test-output.txt").open("wb") as test_out,
            ):
                solution_proc = subprocess.Popen(
                    command, stdin=to_solution_r, stdout=from_solution_w, stderr=out,
                    cwd=cwd, env=env, start_new_session=True, close_fds=True,
                )  # fmt: skip
                procs.append(solution_proc)
                test_proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(HOST), "test",
                     str(to_solution_w), str(from_solution_r)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=test_out,
                    cwd=tests_dir, env=env, start_new_session=True,
                    pass_fds=(to_solution_w, from_solution_r),
                )  # fmt: skip
                procs.append(test_proc)
            for fd in fds:
                os.close(fd)
            fds.clear()
            payload = json.dumps({
                "test": test, "prompt": prompt, "entry_point": entry_point,
                "bind_all": bind_all,
                "limits": {"cpu": int(self.limits.cpu_seconds) + 5, "memory": 2 << 30,
                           "file_bytes": int(self.limits.output_bytes)},
            }).encode()  # fmt: skip
            return self._verdict(root, solution_proc, test_proc, payload)
        finally:
            for fd in fds:
                os.close(fd)
            for proc in procs:
                _kill(proc)
            shutil.rmtree(root, ignore_errors=True)

    def _prepare(self, root: Path, solution: str) -> tuple[list[str], str, dict[str, str], Path]:
        """Lay out ``root`` (judge/ with the host script and the solution, work/, tests/)
        and return the solution's command, its folder, the environment of both processes
        and the test process's folder."""
        iso = self.isolation
        root.chmod(0o711)
        judge = root / "judge"
        judge.mkdir(mode=0o755)
        judge.chmod(0o755)
        shutil.copyfile(HOST, judge / "_sandbox_host.py")
        (judge / "solution.py").write_text(solution, encoding="utf-8")
        for path in judge.iterdir():
            path.chmod(0o644)
        work = root / "work"
        work.mkdir(mode=0o700)
        if iso.uid >= 0:
            os.chown(work, iso.uid, iso.gid)
        tests_dir = root / "tests"
        tests_dir.mkdir(mode=0o700)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1"}
        if iso.kind == "bwrap":
            command, cwd = self._bwrap(str(judge)), str(root)
        else:
            command = self._solution_args(str(judge))
            if iso.kind == "unshare":
                command = ["unshare", "--net", "--pid", "--fork", "--kill-child", *command]
            cwd = str(work)
            env.update(HOME=str(work), TMPDIR=str(work))
        return command, cwd, env, tests_dir

    def _verdict(
        self,
        root: Path,
        solution_proc: subprocess.Popen,
        test_proc: subprocess.Popen,
        payload: bytes,
    ) -> Verdict:
        """Send the tests to the test process, wait (wall limit), end both, and read
        the verdict the test process wrote."""
        limits = self.limits
        timed_out = False
        try:
            stdout, _ = test_proc.communicate(payload, timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
            stdout = b""
        # Ended by itself (a limit, a crash) or by us now that the tests are done?
        ended = solution_proc.poll() is not None
        _kill(solution_proc)
        _kill(test_proc)
        output = _head(root / "solution-output.txt")
        died = _signal_of(solution_proc.returncode, self.isolation.kind) if ended else None
        if timed_out:
            return Verdict(False, f"timed out after {limits.wall_seconds:g} s", output)
        try:
            result = json.loads(stdout.decode().strip().splitlines()[-1])
            passed, error = bool(result["passed"]), str(result.get("error") or "")
        except (ValueError, IndexError, KeyError, UnicodeDecodeError):
            tail = _head(root / "test-output.txt")[-600:]
            return Verdict(False, f"the test process gave no verdict: {tail}", output)
        if passed:
            return Verdict(True, "passed", output)
        if died:
            error = f"{error} (solution process: {died})"
        return Verdict(False, error or "failed", output)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process group (its own session), then reap."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not wait
        pass


def _signal_of(code: int | None, kind: str) -> str | None:
    if code is None:
        return None
    number = -code if code < 0 else (code - 128 if kind != "none" and code > 128 else None)
    if number is None or number <= 0:
        return None
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    what = _SIGNALS.get(signal.Signals(number))
    return f"{name}, {what}" if what else name


def _head(path: Path, size: int = 2000) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(size).decode("utf-8", "replace")
    except OSError:
        return ""

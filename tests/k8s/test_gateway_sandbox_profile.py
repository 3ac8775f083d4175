"""The gateway's seccomp profile as a container runtime applies it to bubblewrap.

runc runs bubblewrap with the gateway's own command lines (``massgen_gateway.sandbox``) in
a container shaped like the gateway's pod under Pod Security "restricted": uid 10001, no
capabilities, ``no_new_privs``, its own PID, network, IPC, UTS, mount and cgroup
namespaces, a read-only root, and the masked ``/proc`` of ``procMount: Default`` (runc's
default masked and read-only paths, the same as containerd's) unless a test unmasks it.

- The runtime default refuses the sandbox: what the gateway's probe reports on a cluster
  without ``components/gateway-sandbox``.
- The gateway's profile lets bubblewrap build it, and each addition of ``seccomp.py`` is
  needed.
- The masked ``/proc`` still keeps bubblewrap from mounting a fresh ``/proc`` in the
  sandbox: a line that mounts one works only where ``/proc`` is unmasked, which "restricted"
  forbids (README "Sandboxed tools").

Needs root, runc and bubblewrap under ``/usr`` (skipped otherwise).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import seccomp  # deploy/k8s: on the path by the pytest ``pythonpath`` of pyproject.toml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"

sandbox = pytest.importorskip("massgen_gateway.sandbox")

UID = 10001
"""The gateway image's user (services/mcp-gateway/Dockerfile)."""


class Runtime:
    """A runc bundle whose root shows the host's ``/usr`` and ``/etc`` read-only."""

    def __init__(self, root: Path) -> None:
        self.bundle = root / "bundle"
        self.rootfs = self.bundle / "rootfs"
        self.workspaces = root / "workspaces"
        self.workspace = self.workspaces / "run-1" / "agent1"
        self.workspace.mkdir(parents=True)
        for folder in (self.workspaces, self.workspace.parent, self.workspace):
            os.chown(folder, UID, UID)
        # What the gateway image has at its root (a catalog server's sandbox shows it all).
        for name in ("usr", "etc", "proc", "dev", "sys", "tmp", "var/tmp"):
            (self.rootfs / name).mkdir(parents=True)
        (self.workspaces / "run-2").mkdir()  # another run, which no sandbox may see
        self.mounts = [
            {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
            {"destination": "/etc", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]},
        ]
        for name in ("bin", "sbin", "lib", "lib64"):
            host = Path("/") / name
            if host.is_symlink():
                (self.rootfs / name).symlink_to(os.readlink(host))
            elif host.is_dir():
                self.mounts.append({"destination": str(host), "type": "bind",
                                    "source": str(host), "options": ["rbind", "ro"]})  # fmt: skip
        self.mounts += [
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]},
            # The workspaces at the same path as on the host: the gateway's command lines
            # are built from host paths.
            {"destination": str(self.workspaces), "type": "bind",
             "source": str(self.workspaces), "options": ["rbind", "rw"]},
        ]  # fmt: skip
        subprocess.run(["runc", "spec", "--bundle", str(self.bundle)], check=True)
        self.spec = json.loads((self.bundle / "config.json").read_text())

    def run(self, argv: list[str], profile: dict | None, *, masked: bool = True) -> tuple[int, str]:
        """Exit code and output of ``argv`` in the container (``profile``: its seccomp)."""
        spec = copy.deepcopy(self.spec)
        spec["process"].update(
            terminal=False, args=argv, cwd="/", env=["PATH=/usr/bin:/bin"],
            user={"uid": UID, "gid": UID}, noNewPrivileges=True,
            capabilities={k: [] for k in ("bounding", "effective", "inheritable", "permitted",
                                          "ambient")},
        )  # fmt: skip
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        spec["hostname"] = "gateway"
        spec["mounts"] = [*spec["mounts"], *self.mounts]
        linux = spec["linux"]
        linux["namespaces"] = [*linux["namespaces"], {"type": "cgroup"}]
        if not masked:  # procMount: Unmasked
            linux["maskedPaths"], linux["readonlyPaths"] = [], []
        if profile is not None:
            linux["seccomp"] = profile
        (self.bundle / "config.json").write_text(json.dumps(spec))
        name = f"massgen-test-{uuid.uuid4().hex[:8]}"
        try:
            proc = subprocess.run(
                ["runc", "run", "--bundle", str(self.bundle), name],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        finally:
            subprocess.run(["runc", "delete", "--force", name], capture_output=True)
        return proc.returncode, (proc.stdout + proc.stderr).strip()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Runtime:
    if os.geteuid() != 0:
        pytest.skip("runc needs root")
    if not shutil.which("runc"):
        pytest.skip("runc not installed (apt-get install runc)")
    bwrap = shutil.which("bwrap")
    if not bwrap or not os.path.realpath(bwrap).startswith("/usr/"):
        pytest.skip("bubblewrap not installed under /usr")
    return Runtime(tmp_path_factory.mktemp("sandbox-profile"))


def _command_line(runtime: Runtime, script: str) -> list[str]:
    """The gateway's ``execute_command`` sandbox around ``sh -c script``."""
    return sandbox.confined(
        ["/bin/sh", "-c", script],
        mounts=[sandbox.Mount(str(runtime.workspace), writable=True)],
        workdir=str(runtime.workspace), env={"PATH": "/usr/bin:/bin"}, tmp_bytes=1 << 20,
        max_processes=32, hidden=[str(runtime.workspaces)],
    )  # fmt: skip


def _without_fresh_proc(line: list[str]) -> list[str]:
    at = line.index("--proc")
    return line[:at] + line[at + 2 :]


def _profile_without(name: str) -> dict:
    profile = seccomp.profile()
    for rule in profile["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n != name]
    profile["syscalls"] = [rule for rule in profile["syscalls"] if rule["names"]]
    return profile


INSIDE = (
    "id -u; hostname; grep -c : /proc/net/dev; echo hi > note && cat note; "
    "test -e ../../run-2 && echo visible || echo hidden"
)
"""uid, host name, network interfaces (only lo), a write in the workspace, another run."""


def test_runtime_default_refuses_the_sandbox(runtime):
    code, out = runtime.run(_command_line(runtime, "true"), seccomp.runtime_default())
    assert code != 0 and "create new namespace" in out, out


def test_gateway_profile_lets_bubblewrap_build_the_command_sandbox(runtime):
    code, out = runtime.run(_command_line(runtime, INSIDE), seccomp.profile(), masked=False)
    assert code == 0, out
    assert out.splitlines() == ["65534", "sandbox", "1", "hi", "hidden"]


@pytest.mark.parametrize("name", sorted(seccomp.ADDITIONS))
def test_every_addition_is_needed(runtime, name):
    code, out = runtime.run(_command_line(runtime, "true"), _profile_without(name), masked=False)
    assert code != 0, f"bubblewrap works without {name}: drop it from seccomp.ADDITIONS"


def test_catalog_server_sandbox_builds_under_the_gateway_profile(runtime, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: UID)  # the line the gateway's user builds
    command, args = sandbox.sandboxed(
        "/bin/sh", ["-c", "id -u"], workspace=runtime.workspace,
        hidden=[runtime.workspaces], env={},
    )  # fmt: skip
    code, out = runtime.run([command, *args], seccomp.profile(), masked=False)
    assert (code, out) == (0, "65534"), out


def test_masked_proc_keeps_bubblewrap_from_mounting_a_fresh_proc(runtime):
    """Under ``procMount: Default`` (the only value "restricted" admits) the kernel refuses
    a new procfs in a user namespace while the container's ``/proc`` has masked entries;
    the same sandbox without a fresh ``/proc`` builds."""
    line = _command_line(runtime, "echo built")
    code, out = runtime.run(line, seccomp.profile())
    if "--proc" in line:
        assert code != 0 and "Can't mount proc" in out, out
        code, out = runtime.run(_without_fresh_proc(line), seccomp.profile())
    assert (code, out) == (0, "built")


def test_in_a_restricted_pod_the_gateway_sandbox_builds_with_an_empty_proc(runtime, monkeypatch):
    """What the gateway does where the probe finds a fresh ``/proc`` refused: the same
    sandbox with an empty ``/proc`` builds under the masked one, with the profile."""
    monkeypatch.setattr(sandbox, "fresh_proc", lambda: False)
    line = _command_line(runtime, "id -u; ls -A /proc | wc -l; echo hi > note && cat note")
    code, out = runtime.run(line, seccomp.profile())  # masked /proc: procMount Default
    assert code == 0, out
    assert out.splitlines() == ["65534", "0", "hi"]

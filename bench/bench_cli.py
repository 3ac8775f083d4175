"""Figures for the ``massgen`` command as people use it (prints a Markdown section).

- display CPU: the command's own CPU time (rich display in a pseudo-terminal, warm
  stack, so the process only follows events and draws) while 3 agents stream
  100 tokens/s each, as a share of one core;
- time from starting ``massgen`` to the first agent panel on screen, cold (private
  stack) and warm (``massgen up``);
- a whole 3-agent run at 200 tokens x 10 ms per turn on a warm stack (three
  sequential phases of ~2 s: answer, vote, present = 6.0 s of streaming).

The fake model runs in this process (tests/fakes); every massgen runs in its own pty.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from fakes.agents import study_agent  # noqa: E402
from fakes.openai_server import FakeOpenAIServer  # noqa: E402

MASSGEN = str(Path(sys.executable).with_name("massgen"))
ANSWERS = [
    "Canberra is the capital of Australia.",
    "The capital of Australia is Canberra, chosen as a compromise between Sydney and Melbourne.",
    "Australia's capital city is Canberra, in the Australian Capital Territory.",
]


def _team(server: FakeOpenAIServer, folder: Path, tokens: int, delay: float) -> Path:
    models = [f"bench{i}-{tokens}-{delay}" for i in range(3)]
    for i, model in enumerate(models):
        server.behave(model, study_agent(ANSWERS[i], "agent1", tokens=tokens, token_delay=delay))
    config = {
        "agents": [
            {"id": f"a{i + 1}", "backend": {"type": "chatcompletion", "model": m,
                                            "base_url": server.base_url, "api_key": "sk-fake"}}
            for i, m in enumerate(models)
        ]
    }  # fmt: skip
    path = folder / f"team-{tokens}-{delay}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run_in_pty(args: list[str], env: dict[str, str], cwd: Path, marker: bytes | None = None):
    """Run massgen in a 160x45 pty; returns (wall s, first-marker s, cpu s, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 160, 0, 0))
    started = time.monotonic()
    proc = subprocess.Popen(
        [MASSGEN, *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    output = bytearray()
    seen: list[float] = []
    cpu_at: list[float] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            output.extend(data)
            if marker and not seen and marker in output:
                seen.append(time.monotonic() - started)
                cpu_at.append(_proc_cpu(proc.pid))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    reader.join(5)
    os.close(master)
    cpu = usage.ru_utime + usage.ru_stime
    if cpu_at:  # CPU after the first panel: drawing and following, not start-up imports
        cpu, wall = cpu - cpu_at[0], wall - seen[0]
    return wall, (seen[0] if seen else None), cpu, bytes(output), os.waitstatus_to_exitcode(status)


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="massgen-bench-cli-"))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(HOME=str(work / "home"), MASSGEN_RUNTIME_DIR=str(work / "runtime"),
               NO_PROXY="127.0.0.1,localhost", TERM="xterm-256color",
               LITELLM_LOCAL_MODEL_COST_MAP="True")  # fmt: skip
    (work / "home").mkdir()
    server = FakeOpenAIServer().start()
    rows = []
    try:
        first_panel = "╭".encode()  # a panel's corner: panels are on screen
        quick = _team(server, work, 20, 0.01)
        cold = _run_in_pty(["--config", str(quick), "q"], env, work, first_panel)
        up = subprocess.run([MASSGEN, "up", "--providers", "chatcompletion"], env=env, cwd=work,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        try:
            warm_runs = [_run_in_pty(["--config", str(quick), "q"], env, work, first_panel)
                         for _ in range(3)]  # fmt: skip
            stream = _team(server, work, 400, 0.01)  # 100 tokens/s per agent, ~4 s a turn
            streaming = _run_in_pty(["--config", str(stream), "q"], env, work, "╭".encode())
            whole = _team(server, work, 200, 0.01)
            full = [_run_in_pty(["--config", str(whole), "--display", "simple", "q"], env, work)
                    for _ in range(2)]  # fmt: skip
        finally:
            subprocess.run([MASSGEN, "down"], env=env, cwd=work, capture_output=True, timeout=60)
    finally:
        server.stop()
    warm_first = sorted(r[1] for r in warm_runs if r[1] is not None)
    cpu_share = streaming[2] / streaming[0]
    best_full = min(r[0] for r in full)
    rows.append(("display CPU, 3 agents x 100 tokens/s (rich, warm stack)",
                 f"{100 * cpu_share:.1f}% of one core ({streaming[2]:.2f} s CPU in "
                 f"{streaming[0]:.1f} s after the first panel)", "≤ 10%"))  # fmt: skip
    rows.append(("`massgen` → first panel, cold (private stack)",
                 f"{cold[1]:.2f} s" if cold[1] else "n/a", "—"))  # fmt: skip
    rows.append(("`massgen` → first panel, warm (`massgen up`), median of 3",
                 f"{warm_first[len(warm_first) // 2]:.2f} s" if warm_first else "n/a",
                 "≤ 1.5 s"))  # fmt: skip
    rows.append(("whole 3-agent run, 200 tokens × 10 ms, warm, best of 2",
                 f"{best_full:.2f} s ({best_full / 6.0:.2f} × 6.0 s)", "≤ 1.1 × 6.0 s"))  # fmt: skip
    print("## CLI (`bench/bench_cli.py`)\n")
    print("| measure | result | target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    print(
        "\nThe command runs in a pseudo-terminal (160×45) against the scripted fake model; "
        "CPU is the massgen process's own user+system time (rusage), not the stack's."
    )
    print("\n```json\n" + json.dumps({"exit_codes": [cold[4], streaming[4], *[r[4] for r in full]]})
          + "\n```")  # fmt: skip


if __name__ == "__main__":
    main()

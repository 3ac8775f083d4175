"""Figures for the ``massgen`` command as people use it (prints a Markdown section).

- display CPU: the command's own CPU time (rich display in a pseudo-terminal, warm
  stack, so the process only follows events and draws) while 3 agents stream
  100 tokens/s each, as a share of one core;
- time from starting ``massgen`` to the first agent panel on screen, cold (private
  stack) and warm (``massgen up``);
- a whole 3-agent run at 200 tokens x 10 ms per turn on a warm stack (three
  sequential phases of ~2 s: answer, vote, present = 6.0 s of streaming);
- streaming answers (the answer inside the ``new_answer`` call, as most models do it):
  3 agents x 100 tokens/s of tool-call arguments on a warm stack, rich display. Chunk
  -> screen latency: from a chunk event's publication by the worker (its ``ts`` in
  events.jsonl) to the first time each of its words is written to the terminal; the
  display's CPU over the same window;
- NATS messages per 200-token answer, one event per token (batching off) and batched
  (the worker's defaults), at 100 tokens/s and from a fast provider.

The fake model runs in this process (tests/support/fakes); every massgen runs in its own pty.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a file: become the module bench.<name> (see _as_module)
    from _as_module import run_as_module

    run_as_module(__file__)

import yaml  # noqa: E402

from tests.support.fakes.agents import study_agent  # noqa: E402
from tests.support.fakes.openai_server import FakeOpenAIServer  # noqa: E402

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


def _run_in_pty(args: list[str], env: dict[str, str], cwd: Path, marker: bytes | None = None,
                reads: list | None = None):  # fmt: skip
    """Run massgen in a 160x45 pty; returns (wall s, first-marker s, cpu s, output).

    ``reads``: when given, gets one ``(epoch s, bytes, process CPU s)`` per read.
    """
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
            if reads is not None:
                reads.append((time.time(), data, _proc_cpu(proc.pid)))
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
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- streaming answers: chunk -> screen latency and display CPU -------------------------

_WORD = re.compile(rb"[abc]\d{6}")


def _answer_text(prefix: str, tokens: int) -> str:
    """``tokens`` words of 8 characters (one fake-model fragment each), unique per agent."""
    return " ".join(f"{prefix}{i:06d}" for i in range(tokens))


def _streaming_team(server: FakeOpenAIServer, folder: Path, tokens: int, delay: float) -> Path:
    models = [f"stream{i}-{tokens}-{delay}" for i in range(3)]
    for prefix, model in zip("abc", models, strict=True):
        # tokens=None: no words before the call, the whole answer is the call's arguments.
        server.behave(
            model,
            study_agent(
                _answer_text(prefix, tokens),
                "agent1",
                presentation="Final: Canberra.",
                token_delay=delay,
            ),
        )
    config = {
        "agents": [
            {"id": f"s{i + 1}", "backend": {"type": "chatcompletion", "model": m,
                                            "base_url": server.base_url, "api_key": "sk-fake"}}
            for i, m in enumerate(models)
        ]
    }  # fmt: skip
    path = folder / f"stream-team-{tokens}-{delay}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _latest_events(work: Path) -> list[dict]:
    folders = sorted((work / ".massgen" / "logs").iterdir(), key=lambda p: p.stat().st_mtime)
    lines = (folders[-1] / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _streaming_figures(reads: list, events: list[dict]) -> dict[str, float]:
    """Latency (chunk published -> its words on screen) and CPU over the answer phase."""
    first_seen: dict[bytes, float] = {}
    tail = b""
    for at, data, _cpu in reads:
        window = tail + data
        for match in _WORD.finditer(window):
            first_seen.setdefault(match.group(), at)
        tail = window[-16:]
    latencies = []
    texts: dict[str, str] = {}
    for event in events:
        if event["kind"] != "chunk" or event["channel"] != "answer":
            continue
        before = texts.get(event["label"], "")
        after = before + event["text"]
        texts[event["label"]] = after
        # The words this chunk completes (fixed width: a match is always a whole word).
        for match in _WORD.finditer(after.encode(), max(0, len(before) - 7)):
            if match.end() > len(before) and match.group() in first_seen:
                latencies.append(first_seen[match.group()] - event["ts"])
    seen = sorted(first_seen.values())
    start, end = seen[0], seen[-1]
    cpu = [(at, c) for at, _data, c in reads if start <= at <= end and c == c]
    share = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) if len(cpu) > 1 else float("nan")
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    chunks = sum(1 for e in events if e["kind"] == "chunk" and e["channel"] == "answer")
    return {"p50": pct(0.5), "p99": pct(0.99), "max": latencies[-1] * 1000,
            "words": len(latencies), "cpu": share, "window": end - start,
            "chunks": chunks}  # fmt: skip


# -- NATS messages per answer -----------------------------------------------------------


async def _count_messages(nats_url: str, server: FakeOpenAIServer, chunk_flush: float | None,
                          delay: float, tokens: int = 200) -> int:  # fmt: skip
    """Messages on a run's event subjects while one worker streams one answer."""
    import nats
    from massgen_kit.jetstream import StreamSettings
    from massgen_proto.messages import Verdict
    from massgen_proto.subjects import SUBMIT_REPORT, events_filter, turn_subject
    from massgen_worker import WorkerService, WorkerSettings

    from tests.support.fakes.openai_server import answer
    from tests.support.fakes.turns import make_turn_request

    nc = await nats.connect(nats_url)

    async def accept(msg):
        await msg.respond(Verdict(status="accepted").model_dump_json().encode())

    await nc.subscribe(SUBMIT_REPORT, cb=accept)
    overrides = {} if chunk_flush is None else {"chunk_flush_seconds": chunk_flush}
    worker = WorkerService(nats_url, ["benchmsgs"], WorkerSettings(
        stream_settings=StreamSettings(memory=True), fetch_timeout=0.5, use_gateway=False,
        **overrides))  # fmt: skip
    await worker.start()
    model = f"msgs-{chunk_flush}-{delay}"
    server.script(model, [answer(_answer_text("a", tokens), token_delay=delay)])
    request = make_turn_request(model, server.base_url, run_id=f"msgs{abs(hash(model)) % 10**8}")
    received: list[bytes] = []
    done = asyncio.Event()

    async def on_event(msg):
        received.append(msg.data)
        if b'"token_usage"' in msg.data:
            done.set()

    await nc.subscribe(events_filter(request.run_id), cb=on_event)
    await nc.jetstream().publish(turn_subject("benchmsgs"), request.model_dump_json().encode())
    await asyncio.wait_for(done.wait(), 60)
    await worker.stop()
    await nc.drain()
    return len(received)


async def _messages_per_answer(server: FakeOpenAIServer) -> list[tuple[str, int, int]]:
    from massgen_cli.nats_server import NatsServer
    from massgen_kit.logsetup import configure_logging

    configure_logging("warning", sys.stderr)  # stdout is the Markdown section

    nats = NatsServer().start()
    try:
        rows = []
        for label, delay in (("100 tokens/s", 0.01), ("fast provider (no pacing)", 0.0)):
            before = await _count_messages(nats.url, server, 0.0, delay)
            after = await _count_messages(nats.url, server, None, delay)
            rows.append((label, before, after))
        return rows
    finally:
        nats.stop()


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
        # Cold: a private stack, and no background stack started for the next command.
        cold = _run_in_pty(
            ["--config", str(quick), "q"], {**env, "MASSGEN_NO_DAEMON": "1"}, work, first_panel
        )
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
            answers = _streaming_team(server, work, 400, 0.01)  # 100 tokens/s, ~4 s
            reads: list = []
            streamed = _run_in_pty(["--config", str(answers), "q"], env, work, "╭".encode(),
                                   reads=reads)  # fmt: skip
            figures = _streaming_figures(reads, _latest_events(work))
        finally:
            subprocess.run([MASSGEN, "down"], env=env, cwd=work, capture_output=True, timeout=60)
        messages = asyncio.run(_messages_per_answer(server))
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
                 f"{best_full:.2f} s ({best_full / 6.0:.2f} × 6.0 s)",
                 "≤ 1.1 × 6.0 s"))  # fmt: skip
    rows.append(("answers streaming (in the tool call), 3 agents x 100 tokens/s: "
                 "chunk → screen latency", f"p50 {figures['p50']:.0f} ms, p99 "
                 f"{figures['p99']:.0f} ms, max {figures['max']:.0f} ms "
                 f"({figures['words']} words)", "p99 ≤ 50 ms"))  # fmt: skip
    rows.append(("display CPU, the same 3 agents x 100 tokens/s of tool-call arguments",
                 f"{100 * figures['cpu']:.1f}% of one core (over the {figures['window']:.1f} s "
                 f"the answers streamed; {figures['chunks']} answer chunks)",
                 "≤ 10%"))  # fmt: skip
    for label, before, after in messages:
        rows.append((f"NATS messages per 200-token answer, {label}",
                     f"{before} one event per token → {after} batched", "—"))  # fmt: skip
    print("## CLI (`bench/bench_cli.py`)\n")
    print("| measure | result | target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    print(
        "\nThe command runs in a pseudo-terminal (160×45) against the scripted fake model; "
        "CPU is the massgen process's own user+system time (rusage), not the stack's."
    )
    print(
        "\nStreaming answers: the fake model puts each agent's 400-word answer inside its "
        "`new_answer` call, one 8-character argument fragment every 10 ms. The worker decodes "
        "the answer from the partial JSON and publishes it in batches (first piece at once, "
        "then every 50 ms or 256 characters); the display draws a change within one frame "
        "(at most 40 frames a second). Latency runs from a chunk event's `ts` (set when the "
        "worker publishes it) to the pty read that first holds each word the chunk "
        "completes. Messages per answer: one worker, the answer's ~200 argument fragments, "
        "counted on the run's event subjects (answer chunks, the tool call, token usage)."
    )
    codes = [cold[4], streaming[4], *[r[4] for r in full], streamed[4]]
    print("\n```json\n" + json.dumps({"exit_codes": codes}) + "\n```")


if __name__ == "__main__":
    main()

"""Local model speed and workflow tool-call reliability, per installed model.

For each model whose weights are installed: start time (weights already cached),
time to first token on a short prompt, generation speed with one and with three
concurrent requests, prompt reading speed, and how many ``tool_choice="required"``
calls with the ``new_answer``/``vote`` tools come back valid (3 slots, 3 at a time,
varied prompts, temperature 0.7). Prints a Markdown section on stdout.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import statistics
import sys
import time

import openai
import structlog
from massgen_local_model import MODELS, start_local_model
from massgen_local_model.registry import ChunkedModel

ORDER = ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "new_answer",
            "description": "Give your own answer.",
            "parameters": {
                "type": "object",
                "properties": {"content": {"type": "string"}},
                "required": ["content"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "vote",
            "description": "Vote for the best existing answer.",
            "parameters": {
                "type": "object",
                "properties": {
                    "agent_id": {"type": "string", "enum": ["agent1", "agent2", "agent3"]},
                    "reason": {"type": "string"},
                },
                "required": ["agent_id", "reason"],
            },
        },
    },
]
QUESTIONS = [
    ("What is 2+2?", ["4", "5", "four"]),
    ("Capital of France?", ["Paris", "Lyon", "Paris, France"]),
    ("Reverse a string in Python.", ["s[::-1]", "reversed(s)", "''.join(reversed(s))"]),
    ("Is 17 prime?", ["yes", "no", "Yes, 17 is prime."]),
]
TOOL_CALLS = 12


def installed(name: str) -> bool:
    spec = MODELS[name]
    packages = spec.packages if isinstance(spec, ChunkedModel) else (spec.package,)
    try:
        for package in packages:
            importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


async def timed_stream(api: openai.AsyncOpenAI, model: str, prompt: str, max_tokens: int):
    """Return (seconds to first token, tokens after the first, seconds after the first)."""
    started = time.perf_counter()
    first = end = None
    tokens = 0
    stream = await api.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        max_tokens=max_tokens,
        temperature=0,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},  # always generate max_tokens: comparable runs
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            end = time.perf_counter()
            if first is None:
                first = end
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    assert first is not None and end is not None
    return first - started, tokens - 1, max(end - first, 1e-9)


def valid_call(reply) -> bool:
    calls = reply.choices[0].message.tool_calls or []
    if reply.choices[0].finish_reason != "tool_calls" or len(calls) != 1:
        return False
    name, args = calls[0].function.name, json.loads(calls[0].function.arguments)
    if name == "new_answer":
        return set(args) == {"content"} and isinstance(args["content"], str)
    return (
        name == "vote"
        and set(args) == {"agent_id", "reason"}
        and args["agent_id"] in ("agent1", "agent2", "agent3")
    )


async def tool_call_run(api: openai.AsyncOpenAI, model: str, i: int) -> tuple[bool, str]:
    question, answers = QUESTIONS[i % len(QUESTIONS)]
    listing = "\n".join(f"agent{k + 1}: {a}" for k, a in enumerate(answers))
    reply = await api.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": f"You are agent{i % 3 + 1}. Be brief."},
            {
                "role": "user",
                "content": f"Q: {question}\nAnswers:\n{listing}\n"
                "Vote for the best answer, or give a better one.",
            },
        ],
        tools=TOOLS,
        tool_choice="required",
        max_tokens=150,
        temperature=0.7,
    )
    ok = valid_call(reply)
    return ok, (reply.choices[0].message.tool_calls or [None])[0].function.name if ok else "-"


async def measure(name: str) -> dict[str, object]:
    started = time.perf_counter()
    handle = start_local_model(name, n_parallel=3, ctx_per_slot=2048, on_progress=lambda d, t: None)
    start_s = time.perf_counter() - started
    try:
        api = openai.AsyncOpenAI(base_url=handle.base_url, api_key="unused", max_retries=0)
        await timed_stream(api, name, "Hi", 4)  # warm up
        ttfts = []
        for i in range(3):
            ttft, _, _ = await timed_stream(api, name, f"Name a color ({i}).", 1)
            ttfts.append(ttft)
        _, n, secs = await timed_stream(api, name, "Write a short story about a robot.", 128)
        single = n / secs
        par = await asyncio.gather(
            *(timed_stream(api, name, f"Write a poem about the number {k}.", 96) for k in range(3))
        )
        wall = max(t + s for t, _, s in par)
        aggregate = sum(n for _, n, _ in par) / wall
        long_prompt = "Summarise in one word: " + " ".join(f"item{k}" for k in range(400))
        prompt_s, _, _ = await timed_stream(api, name, long_prompt, 1)
        calls = []
        for batch in range(0, TOOL_CALLS, 3):
            calls += await asyncio.gather(
                *(tool_call_run(api, name, i) for i in range(batch, batch + 3))
            )
        await api.close()
    finally:
        handle.stop()
    kinds = [k for ok, k in calls if ok]
    return {
        "model": name,
        "start": start_s,
        "ttft": statistics.median(ttfts),
        "single": single,
        "aggregate": aggregate,
        "prompt_1k_chars": prompt_s,
        "valid": f"{len(kinds)}/{len(calls)} "
        f"({kinds.count('vote')} vote, {kinds.count('new_answer')} new_answer)",
    }


def main() -> int:
    # Logs to stderr: stdout is the Markdown section.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    models = [m for m in ORDER if installed(m)]
    print("## Local model (llama.cpp via xllamacpp, all cores: 2 threads here)\n")
    if not models:
        print("_no local model weights installed (`make install-models`)_")
        return 0
    rows = [asyncio.run(measure(m)) for m in models]
    print(
        "| model | start (cached weights) | first token, short prompt | tok/s, 1 stream "
        "| tok/s, 3 streams total | ~1.2k-token prompt to first token "
        "| valid forced workflow calls |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['start']:.2f} s | {r['ttft']:.2f} s | {r['single']:.1f} "
            f"| {r['aggregate']:.1f} | {r['prompt_1k_chars']:.1f} s | {r['valid']} |"
        )
    print(
        f'\nForced calls: `tool_choice="required"` with `new_answer`/`vote`, {TOOL_CALLS} calls '
        "3 at a time on 3 slots, temperature 0.7, decoded under the tools' JSON-schema grammar."
    )
    print(f"\nllama.cpp build: {build_features()} (`scripts/llama_cpu.py`, README).")
    return 0


def build_features() -> str:
    """The instruction sets the installed llama.cpp was built with, and whence it came."""
    import xllamacpp

    info = xllamacpp.get_system_info()
    on = [part.split("=")[0].strip() for part in info.split("|") if part.strip().endswith("= 1")]
    simd = [name for name in on if name.startswith(("AVX", "F16C", "FMA"))]
    avx512 = any(name.startswith("AVX512") for name in simd)
    how = "built here from the locked sdist" if avx512 else "the PyPI wheel"
    return f"{how}, {' '.join(simd) or 'no SIMD named'}"


if __name__ == "__main__":
    sys.exit(main())

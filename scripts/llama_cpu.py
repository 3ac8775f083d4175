"""Whether to build llama.cpp (xllamacpp) for this CPU, and with which instructions.

xllamacpp's PyPI wheel is built for AVX2, the common ground of x86-64 machines. On a CPU
with AVX-512 the same locked source built with those instructions reads prompts about
1.6 times and writes tokens about 1.1 times as fast (llama-bench, Qwen 0.5B, 2 threads,
on this project's 2-core machine). The Makefile then builds xllamacpp from the sdist the
lock pins, with the flags this script prints (about six minutes on 2 cores, once: uv
keeps the built wheel in its cache).

    python3 scripts/llama_cpu.py            # the CMake flags; nothing: use the wheel
    python3 scripts/llama_cpu.py --check    # exit 1 if the installed xllamacpp lacks them

Nothing is printed (the wheel is kept) on other CPUs, without a C++ compiler and CMake,
or with ``MASSGEN_LLAMA_PORTABLE=1`` (for an image that runs on other machines: the
flags are this CPU's). AMX is never turned on: where a hypervisor reports AMX but does
not let threads use it (as on this project's machines), its kernels die on SIGILL.
Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path

AVX512 = ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")
"""What GGML_AVX512 compiles for: all of them, or no AVX-512 build."""
OPTIONAL = {
    "avx512vbmi": "GGML_AVX512_VBMI",
    "avx512_vnni": "GGML_AVX512_VNNI",
    "avx512_bf16": "GGML_AVX512_BF16",
    "avx_vnni": "GGML_AVX_VNNI",
}
"""CPU flag -> the ggml option that uses it, when the CPU has it."""
BASE = ("GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2", "GGML_AVX512")
OFF = ("GGML_NATIVE", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16", "LLAMA_LLGUIDANCE",
       "LLAMA_BUILD_BORINGSSL")  # fmt: skip
"""Off: -march=native would turn AMX on; llguidance (Rust) and BoringSSL are fetched from
the network, and the local model uses neither (GBNF grammars, a loopback server)."""


def cpu_flags(cpuinfo: str) -> set[str]:
    """The flags of the first processor in ``/proc/cpuinfo`` text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def cmake_args(flags: set[str]) -> list[str]:
    """The CMake options for a CPU with ``flags``; empty when the wheel is as good."""
    if not all(f in flags for f in AVX512):
        return []
    on = [*BASE, *(option for flag, option in OPTIONAL.items() if flag in flags)]
    return [f"-D{o}=ON" for o in on] + [f"-D{o}=OFF" for o in OFF]


def wanted() -> list[str]:
    """The CMake options for this machine (empty: keep the wheel)."""
    if os.environ.get("MASSGEN_LLAMA_PORTABLE", "") not in ("", "0"):
        return []
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return []
    if not (shutil.which("cmake") and (shutil.which("c++") or shutil.which("g++"))):
        return []
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return cmake_args(cpu_flags(cpuinfo))


def installed_has(options: list[str]) -> bool:
    """Whether the installed xllamacpp was built with the instructions ``options`` turn
    on (its ``get_system_info()`` names them, e.g. ``AVX512_VNNI = 1``)."""
    try:
        import xllamacpp  # noqa: PLC0415 - only in the virtualenv, for --check
    except ImportError:
        return False
    info = xllamacpp.get_system_info()
    on = [o[len("-DGGML_") : -len("=ON")] for o in options if o.endswith("=ON")]
    return all(f"{name} = 1" in info for name in on if name.startswith("AVX512"))


def main(argv: list[str]) -> int:
    options = wanted()
    if argv[1:] == ["--check"]:
        return 0 if not options or installed_has(options) else 1
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    print(" ".join(options))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

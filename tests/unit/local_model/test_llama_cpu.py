"""Which llama.cpp build a machine gets (scripts/llama_cpu.py, used by the Makefile)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scripts.llama_cpu import cmake_args, cpu_flags

ROOT = Path(__file__).resolve().parents[3]
SAPPHIRE = (
    "fpu sse sse2 avx avx2 fma f16c bmi2 avx512f avx512dq avx512cd avx512bw avx512vl "
    "avx512vbmi avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8"
)


def test_a_cpu_with_avx512_gets_its_instructions_and_never_amx():
    flags = cpu_flags(f"processor\t: 0\nflags\t\t: {SAPPHIRE}\n\nprocessor\t: 1\nflags\t: sse\n")
    assert "avx512_vnni" in flags and "sse" in flags
    args = cmake_args(flags)
    assert "-DGGML_AVX512=ON" in args and "-DGGML_AVX512_VNNI=ON" in args
    assert "-DGGML_AVX512_BF16=ON" in args and "-DGGML_AVX_VNNI=ON" in args
    # -march=native would compile AMX kernels, which die on SIGILL in VMs that report AMX.
    assert "-DGGML_NATIVE=OFF" in args and "-DGGML_AMX_INT8=OFF" in args
    assert not [a for a in args if "AMX" in a and a.endswith("=ON")]
    # Built from the sdist without network fetches (llguidance, BoringSSL).
    assert "-DLLAMA_LLGUIDANCE=OFF" in args and "-DLLAMA_BUILD_BORINGSSL=OFF" in args


def test_without_the_whole_avx512_base_the_portable_wheel_is_kept():
    assert cmake_args(cpu_flags("flags : avx avx2 fma f16c")) == []
    assert cmake_args(cpu_flags("flags : avx2 avx512f avx512cd")) == []  # no vl/dq/bw
    assert cmake_args(set()) == []
    only_base = cmake_args(cpu_flags("flags : avx512f avx512cd avx512vl avx512dq avx512bw"))
    assert "-DGGML_AVX512=ON" in only_base and "-DGGML_AVX512_VNNI=ON" not in only_base


def test_the_script_prints_nothing_when_told_to_stay_portable():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "llama_cpu.py")],
        env={"MASSGEN_LLAMA_PORTABLE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == ""
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "llama_cpu.py"), "--nope"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "--check" in bad.stderr

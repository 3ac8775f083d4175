"""A real local model server shared by this folder's tests.

Uses ``$MASSGEN_TEST_LOCAL_MODEL`` if set, else the smallest model whose weights are
installed; skips (saying what to install) when none is.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator

import pytest
from massgen_local_model import MODELS, LocalModelHandle, start_local_model
from massgen_local_model.registry import ChunkedModel

# Smallest first.
CANDIDATES = ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


def weights_installed(name: str) -> bool:
    """Whether every package carrying ``name``'s weights is installed (metadata only)."""
    spec = MODELS[name]
    packages = spec.packages if isinstance(spec, ChunkedModel) else (spec.package,)
    try:
        for package in packages:
            importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def pick_model(candidates: list[str]) -> str:
    wanted = os.environ.get("MASSGEN_TEST_LOCAL_MODEL")
    if wanted:
        return wanted
    for name in candidates:
        if weights_installed(name):
            return name
    pytest.skip(
        "no local model weights installed: run `make install-models` "
        "(or `uv sync --all-packages --extra qwen05b`)"
    )


@pytest.fixture(scope="module")
def local_model() -> Iterator[LocalModelHandle]:
    """The smallest installed model, 3 slots."""
    with start_local_model(pick_model(CANDIDATES), n_parallel=3, ctx_per_slot=2048) as handle:
        yield handle


@pytest.fixture(scope="module")
def qwen_model() -> Iterator[LocalModelHandle]:
    """Qwen 0.5B, for behaviour the 135M model cannot show (text-JSON tool calls)."""
    if not weights_installed("qwen2.5-coder-0.5b"):
        pytest.skip(
            "qwen2.5-coder-0.5b weights not installed: `uv sync --all-packages --extra qwen05b`"
        )
    with start_local_model("qwen2.5-coder-0.5b", n_parallel=1, ctx_per_slot=2048) as handle:
        yield handle

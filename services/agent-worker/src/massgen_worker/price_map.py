"""Token prices from litellm's price map, read without importing litellm.

litellm ships its price map as a JSON file next to its code
(``model_prices_and_context_window_backup.json``, the copy ``LITELLM_LOCAL_MODEL_COST_MAP``
makes it use). A worker whose calls all go direct (``direct``) need not pay seconds of
``import litellm`` to price them: ``rates(model)`` answers from the file (~30 ms to read,
once) whenever the answer is certainly litellm's, and says ``UNKNOWN`` otherwise, so the
caller asks litellm.

Certain means: the name (``openai/gpt-4o-mini``, or without the provider prefix) is a key
of the map for that very provider, with flat prices (no long-context tiers); or the
name is nowhere in the map, and no key of it starts the name (an alias litellm may
resolve, such as a dated ``gpt-5.5-2026-04-24``), which is how self-hosted models
(``openai/qwen2.5-coder-0.5b``, ``hosted_vllm/Qwen/Qwen3-4B``) come out free.
``tests/unit/worker/test_worker_price_map.py`` checks every certain answer against
``litellm.cost_per_token`` over the whole map.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import threading
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Final, Literal, TypeAlias

from massgen_proto.json_types import JsonValue

__all__ = ["UNKNOWN", "load", "rates"]

MAP_FILE: Final = "model_prices_and_context_window_backup.json"
_ALIAS_MARKS: Final = frozenset("-:@._/")


class _Unknown(Enum):
    # An enum member, so ``rates(...) is UNKNOWN`` narrows the result's type.
    UNKNOWN = "UNKNOWN"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown.UNKNOWN
"""``rates`` cannot be sure of litellm's answer: ask litellm."""
Unknown: TypeAlias = Literal[_Unknown.UNKNOWN]

_lock = threading.Lock()
_map: dict[str, JsonValue] | None = None


def load() -> dict[str, JsonValue] | None:
    """Read the map once (safe from any thread); None when litellm is not installed."""
    global _map
    if _map is None:
        with _lock:
            if _map is None:
                spec = importlib.util.find_spec("litellm")  # finds, does not import
                folders = list(spec.submodule_search_locations or ()) if spec else []
                path = next(
                    (Path(f) / MAP_FILE for f in folders if (Path(f) / MAP_FILE).exists()), None
                )
                _map = json.loads(path.read_text()) if path is not None else {}
    return _map or None


@functools.lru_cache(maxsize=256)
def rates(model: str) -> tuple[float, float] | None | Unknown:
    """Dollars per prompt and per completion token of ``model`` (litellm's name, with its
    provider prefix), None when it is free (not in the map), or ``UNKNOWN``."""
    prices = load()
    if prices is None or "/" not in model:
        return UNKNOWN
    provider, name = model.split("/", 1)
    found = False
    for key in (model, name):
        entry = prices.get(key)
        if not isinstance(entry, Mapping):
            continue
        found = True
        if entry.get("litellm_provider") != provider:
            continue
        flat = "input_cost_per_token" in entry or "output_cost_per_token" in entry
        tiered = any("_above_" in field or "tier" in field for field in entry)
        if tiered or entry.get("mode") not in (None, "chat"):
            return UNKNOWN
        if not flat:
            return UNKNOWN if any("cost" in field for field in entry) else None
        prompt = _number(entry.get("input_cost_per_token"))
        completion = _number(entry.get("output_cost_per_token"))
        return (prompt, completion) if (prompt or completion) else None
    if found or name.startswith("ft:"):
        return UNKNOWN  # another provider's entry, or a fine-tune: litellm's routing decides
    for key in (model.lower(), name.lower()):
        if key in _keys() or any(
            key.startswith(other) and key[len(other)] in _ALIAS_MARKS for other in _keys()
        ):
            return UNKNOWN  # another spelling, or a dated or tagged name, of a known model
    return None


def _number(value: JsonValue) -> float:
    """A price of the map (a missing or non-numeric one is 0, as litellm counts it)."""
    return float(value) if isinstance(value, int | float) else 0.0


@functools.lru_cache(maxsize=1)
def _keys() -> frozenset[str]:
    """The map's names, lowercased (litellm also matches them regardless of case)."""
    return frozenset(key.lower() for key in (load() or {}) if key != "sample_spec")

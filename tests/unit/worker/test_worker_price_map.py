"""``price_map.rates`` answers like ``litellm.cost_per_token`` wherever it is sure.

Over every name of litellm's price map, under each provider prefix a direct call can
have, plus self-hosted names: each answer that is not ``UNKNOWN`` must equal litellm's
(probed the way ``pricing`` probes it: a million tokens each way).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from massgen_worker import price_map

PREFIXES = ("openai/", "hosted_vllm/", "lm_studio/", "nebius/", "dashscope/")
SELF_HOSTED = ("m", "m-agent1", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "org/model-4b",
               "SmolLM2-135M-Instruct", "my-finetune")  # fmt: skip


def litellm_rates(litellm, model: str):
    try:
        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=1_000_000, completion_tokens=1_000_000
        )
    except Exception:  # noqa: BLE001 - litellm raises several kinds for an unmapped model
        return None
    if not (prompt or completion):
        return None
    return prompt / 1_000_000, completion / 1_000_000


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_certain_answer_is_litellms(prefix):
    from massgen_worker.llm import preload

    litellm = preload()
    provider = prefix.rstrip("/")
    names = set(SELF_HOSTED)
    others = set()
    for key, entry in (price_map.load() or {}).items():
        if isinstance(entry, dict):
            # The provider's own names all; other providers' names (which a self-hosted
            # server may reuse) a fixed seventh of, to keep the test short.
            spelled = {key, key.split("/", 1)[-1], key.lower()}
            (names if entry.get("litellm_provider") == provider else others).update(spelled)
    names |= set(sorted(others)[::7])
    certain = priced = 0
    wrong = []
    for name in sorted(names):
        model = prefix + name
        ours = price_map.rates(model)
        if ours is price_map.UNKNOWN:
            continue
        certain += 1
        theirs = litellm_rates(litellm, model)
        priced += theirs is not None
        if ours != theirs and not (
            ours and theirs and all(abs(a - b) < 1e-15 for a, b in zip(ours, theirs, strict=True))
        ):
            wrong.append((model, ours, theirs))
    assert not wrong, wrong[:10]
    assert certain > 200
    if prefix == "openai/":
        assert priced > 50  # gpt-4o, gpt-4.1, ... priced without litellm


def test_common_direct_models():
    assert price_map.rates("openai/gpt-4o-mini") == (1.5e-07, 6e-07)
    for name in SELF_HOSTED:
        assert price_map.rates("openai/" + name) is None
    assert price_map.rates("openai/gpt-5.5-2026-04-24") is price_map.UNKNOWN  # an alias
    assert price_map.rates("openai/ft:gpt-4o-mini:org::id") is price_map.UNKNOWN


def test_reading_the_map_does_not_import_litellm():
    code = ("import sys; from massgen_worker import price_map; "
            "print(price_map.rates('openai/gpt-4o-mini'), 'litellm' in sys.modules)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1.5e-07, 6e-07) False"

"""Which models take images (or audio, PDF documents, videos) as input.

Config validation refuses ``upload_files`` for a model that cannot read them, before the
run starts, so it needs the answer without litellm (the orchestrator and the API do not
have it). Two sources, in order:

1. litellm's model table, read as data (``model_prices_and_context_window_backup.json``
   next to litellm's code, found without importing litellm): an entry for the model,
   under the backend's litellm prefix or bare with the same provider, decides
   (``supports_vision`` / ``supports_audio_input`` / ``supports_pdf_input`` /
   ``supports_video_input``);
2. this project's table of model families (below), for what litellm does not list:
   self-hosted models behind vLLM, SGLang, LM Studio or a generic OpenAI-compatible
   server, aliases such as ``claude-3-5-haiku-latest``, and the same models with an
   aggregator's prefix (``google/gemini-2.5-flash`` on OpenRouter).

A model in neither is taken not to accept the input: the error says so and how to
check, which beats a provider's 400 in the middle of a run.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import Any, Literal

from .providers import BACKENDS

__all__ = ["Input", "accepts", "litellm_entry"]

Input = Literal["image", "audio", "pdf", "video"]

_FIELDS: dict[Input, str] = {
    "image": "supports_vision",
    "audio": "supports_audio_input",
    "pdf": "supports_pdf_input",
    "video": "supports_video_input",
}

_MAP_FILE = "model_prices_and_context_window_backup.json"

# Model families that read images, for models litellm's table does not list (matched
# anywhere in the lowercased name, so "google/gemma-3-27b-it" and "Qwen/Qwen2.5-VL-7B"
# match too).
_VISION_FAMILIES = re.compile(
    r"gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-4-vision|gpt-5|(^|/)o[134](-|$)|claude|gemini|gemma-3"
    r"|grok-4|grok-2-vision|grok-vision|[-_.]vl([-_.]|$)|vision|llava|pixtral|llama-4"
    r"|qwen[\d.]*-?omni|minicpm-v|moondream|internvl|glm-4\.?\d*v|kimi-vl|mistral-small-3"
)
_AUDIO_FAMILIES = re.compile(r"gemini|gpt-4o(-mini)?-audio|qwen[\d.]*-?omni|voxtral")
_PDF_FAMILIES = re.compile(r"gpt-4o|gpt-4\.1|gpt-5|(^|/)o[134](-|$)|claude|gemini")
# Models that take a whole video in a chat message (Gemini as a file part, Qwen VL and
# omni models behind an OpenAI-compatible server as a video_url part).
_VIDEO_FAMILIES = re.compile(r"gemini|qwen[\w.]*-vl|qwen-vl|qwen[\d.]*-?omni")
_FAMILIES: dict[Input, re.Pattern[str]] = {
    "image": _VISION_FAMILIES,
    "audio": _AUDIO_FAMILIES,
    "pdf": _PDF_FAMILIES,
    "video": _VIDEO_FAMILIES,
}


@functools.lru_cache(maxsize=1)
def _litellm_table() -> dict[str, Any]:
    """litellm's model table, or {} when litellm is not installed here."""
    spec = importlib.util.find_spec("litellm")  # finds the package, does not import it
    for folder in list(spec.submodule_search_locations or ()) if spec else []:
        path = Path(folder) / _MAP_FILE
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
    return {}


def litellm_entry(backend_type: str, model: str) -> dict[str, Any] | None:
    """litellm's table entry of ``model`` as ``backend_type`` calls it (None: not listed)."""
    spec = BACKENDS.get(backend_type)
    if spec is None:
        return None
    table = _litellm_table()
    prefix = spec.litellm_prefix
    provider = prefix.rstrip("/")
    for key in (prefix + model, model):
        entry = table.get(key)
        if isinstance(entry, dict) and entry.get("litellm_provider") == provider:
            return entry
    return None


def accepts(backend_type: str, model: str, what: Input) -> bool:
    """Whether ``model`` of ``backend_type`` takes ``what`` as input (see the module
    docstring for the sources)."""
    entry = litellm_entry(backend_type, model)
    if entry is not None and entry.get("mode") in (None, "chat", "responses"):
        flag = bool(entry.get(_FIELDS[what]))
        # litellm marks video input on few models (not on Gemini 2.5's entries, which
        # take video): for video an unset flag falls through to the families.
        if flag or what != "video":
            return flag
    return _FAMILIES[what].search(model.lower()) is not None

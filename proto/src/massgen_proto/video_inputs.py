"""How a video reaches an agent's model: the video itself, its frames, or not at all.

Decided from the backend and model alone (``media_models.accepts``), so config checks,
the gateway and the worker agree:

- ``file``: a Gemini model through litellm's Gemini adapter takes the video as an OpenAI
  ``file`` part (a ``data:video/mp4`` URL), which litellm sends as inline data;
- ``video_url``: another model that takes video (Qwen VL and omni models behind
  DashScope's or a self-hosted OpenAI-compatible server) gets a ``video_url`` part, which
  litellm passes through as it is;
- ``frames``: a vision model that does not take video sees evenly spaced frames as
  image parts (the worker decodes them);
- None: the model takes neither video nor images.
"""

from __future__ import annotations

from typing import Literal

from .media_models import accepts
from .providers import BACKENDS

__all__ = ["VIDEO_FRAMES", "VideoInput", "video_input"]

VideoInput = Literal["file", "video_url", "frames"]

VIDEO_FRAMES = 8
"""Frames a model that does not take video is shown of one video."""


def video_input(backend_type: str, model: str) -> VideoInput | None:
    """How ``model`` of ``backend_type`` is shown a video (see the module docstring)."""
    if accepts(backend_type, model, "video"):
        spec = BACKENDS.get(backend_type)
        return "file" if spec is not None and spec.litellm_prefix == "gemini/" else "video_url"
    return "frames" if accepts(backend_type, model, "image") else None

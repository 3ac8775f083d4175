"""``--baseline single``: each member's model alone, in plain chat.

One model call per member and problem: the member's own system message, then the
question; no coordination prompt, no tools, the member's backend parameters (so the
same ``max_tokens`` budget, temperature and seed). The call goes straight to the
model through the worker's own litellm adapter (``massgen_worker.llm``), from this
process: a one-agent run through the stack would still vote and present (three model
calls and the coordination prompt), which is not "the model alone". On a local stack
the local model's endpoint is the one the team uses.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

__all__ = ["plain_chat"]

RETRIES = 3


async def plain_chat(agent: Any, question: str, *, seconds: float = 600.0) -> dict[str, Any]:
    """Ask ``agent``'s model (a ``massgen_proto.config.AgentConfig``) the question alone.

    Returns ``{"text", "prompt_tokens", "completion_tokens", "wall_seconds", "error"}``;
    ``text`` is None when the call failed (``error`` says why).
    """
    from massgen_proto.messages import BackendSpec
    from massgen_worker.llm import LiteLLMModel, ModelError

    backend = agent.backend
    spec = BackendSpec(
        type=backend.type, model=backend.model or "", base_url=backend.base_url,
        api_key=backend.api_key, temperature=backend.temperature,
        max_tokens=backend.max_tokens, params=backend.passthrough_params(),
    )  # fmt: skip
    messages: list[dict[str, Any]] = []
    if agent.system_message:
        messages.append({"role": "system", "content": agent.system_message})
    messages.append({"role": "user", "content": question})
    started = time.monotonic()
    error: str | None = None
    for attempt in range(RETRIES):
        parts: list[str] = []
        usage = None
        try:
            async with asyncio.timeout(seconds):
                async for delta in LiteLLMModel(spec).stream(messages, None, None):
                    if delta.content:
                        parts.append(delta.content)
                    if delta.usage is not None:
                        usage = delta.usage
        except (ModelError, TimeoutError) as failure:
            error = getattr(failure, "message", None) or f"no reply within {seconds:.0f} s"
            if isinstance(failure, ModelError) and not failure.retryable:
                break
            await asyncio.sleep(0.5 * 2**attempt)
            continue
        return {
            "text": "".join(parts),
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "wall_seconds": round(time.monotonic() - started, 3),
            "error": None,
        }
    return {
        "text": None, "prompt_tokens": 0, "completion_tokens": 0,
        "wall_seconds": round(time.monotonic() - started, 3), "error": error,
    }  # fmt: skip

"""The OpenAI-compatible routes: the teams as models, ``/chat/completions`` (streamed or not)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse
from massgen_proto.events import RunEventAdapter
from massgen_proto.json_types import JsonObject

from ..errors import ApiError
from ..models import ChatCompletionRequest
from ..openai_compat import (
    MessagesError,
    StreamTranslator,
    chunk,
    completion,
    split_messages,
    usage_of,
)
from ..sse import KEEP_ALIVE
from .context import Ctx, Tenant
from .starting import named_team, start_run, wait_finished

__all__ = ["router"]

router = APIRouter()


@router.get("/models", tags=["openai"])
async def list_models(ctx: Ctx, tenant: Tenant) -> dict[str, Any]:
    """The teams, as OpenAI models."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "massgen"}
            for name in sorted(ctx.teams)
        ],
    }


@router.post(
    "/chat/completions",
    tags=["openai"],
    responses={
        200: {
            "description": (
                "A `chat.completion`, or with `stream: true` server-sent "
                "`chat.completion.chunk` events ending with `data: [DONE]`"
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def chat_completions(ctx: Ctx, tenant: Tenant, body: ChatCompletionRequest) -> Response:
    """Ask a team (``model``) as if it were one model; the reply is the final presentation."""
    team = named_team(ctx, body.model, path="body.model")
    try:
        question, history = split_messages(body.messages)
    except MessagesError as error:
        raise ApiError(422, str(error), problems=[(error.path, str(error))]) from None
    run_id = await start_run(ctx, tenant, question, team.config, team=team.name, history=history)
    completion_id = f"chatcmpl-{run_id}"
    created = int(time.time())
    headers = {"X-MassGen-Run-Id": run_id}
    if not body.stream:
        summary = await wait_finished(ctx, run_id, ctx.settings.completion_timeout)
        if summary.final_answer is None:
            raise ApiError(
                502, f"run {run_id} ended {summary.status} without an answer: {summary.message}",
                code="run_" + summary.status,
            )  # fmt: skip
        return JSONResponse(
            completion(completion_id, team.name, created, summary.final_answer,
                       usage_of(summary.tokens)),
            headers=headers,
        )  # fmt: skip
    include_usage = bool((body.model_extra or {}).get("stream_options", {}) or {})

    async def stream() -> AsyncIterator[bytes]:
        translator = StreamTranslator(reasoning=body.massgen_reasoning)

        def data(obj: JsonObject) -> bytes:
            return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

        yield data(chunk(completion_id, team.name, created, {"role": "assistant", "content": ""}))
        agen = ctx.backend.follow(run_id, 0, ctx.settings.sse_heartbeat)
        try:
            async for item in agen:
                if item is None:
                    yield KEEP_ALIVE
                    continue
                event = RunEventAdapter.validate_json(item[1])
                for delta in translator.feed(event):
                    yield data(chunk(completion_id, team.name, created, delta))
                if translator.done:
                    break
        finally:
            await agen.aclose()
        if translator.error:
            yield data({"error": {"message": translator.error, "type": "run_failed"}})
        else:
            usage = usage_of(translator.tokens) if include_usage else None
            yield data(chunk(completion_id, team.name, created, {}, "stop", usage))
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

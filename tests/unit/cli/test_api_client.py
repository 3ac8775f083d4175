"""The ``--api`` client on a mock transport: SSE parsing, resume, error messages, cancel."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from massgen_cli import main as cli
from massgen_cli.api_client import ApiClient, ApiError, parse_sse
from massgen_cli.commands.stack import providers

from tests.support.fakes.run_events import restarts_and_tie

EVENTS = restarts_and_tie()
RUN = EVENTS[0].run_id


def _frames(events, start: int = 0) -> bytes:
    out = b"retry: 1000\n\n: keep-alive\n\n"
    for seq, event in enumerate(events, start + 1):
        out += b"id: %d\nevent: %s\ndata: %s\n\n" % (
            seq, event.kind.encode(), event.model_dump_json().encode(),
        )  # fmt: skip
    return out


async def test_parse_sse_joins_data_lines_and_skips_comments():
    async def lines():
        for line in ["retry: 5", ": hi", "id: 7", "event: x", "data: a", "data:b", "", "data: c"]:
            yield line

    frames = [(f.id, f.event, f.data) async for f in parse_sse(lines())]
    assert frames == [("7", "x", "a\nb"), ("7", None, "c")]  # the last id carries over


async def test_follow_resumes_a_dropped_stream_with_last_event_id():
    seen_ids = []
    half = len(EVENTS) // 2

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer tok"
        last = request.headers.get("Last-Event-ID")
        seen_ids.append(last)
        if last is None:  # the first connection ends early, without run_finished
            return httpx.Response(200, content=_frames(EVENTS[:half]))
        return httpx.Response(200, content=_frames(EVENTS[int(last) :], int(last)))

    api = ApiClient("http://api", "tok", transport=httpx.MockTransport(handler))
    got = []
    summary = await api.follow(RUN, got.append)
    await api.close()
    assert got == EVENTS
    assert seen_ids == [None, str(half)]
    assert summary.status == EVENTS[-1].status


async def test_error_replies_carry_the_api_message_and_paths():
    body = {
        "error": {"message": "invalid request", "type": "invalid_request_error"},
        "detail": [{"path": "body.config.agents[0].backend.type", "message": "unknown type"}],
    }
    api = ApiClient(
        "http://api", transport=httpx.MockTransport(lambda r: httpx.Response(422, json=body))
    )
    with pytest.raises(ApiError) as caught:
        await api.create_run("q", config={"agents": []})
    await api.close()
    assert caught.value.status == 422
    assert str(caught.value) == (
        "422 Unprocessable Entity: invalid request "
        "(body.config.agents[0].backend.type: unknown type)"
    )


async def test_cancel_posts_to_the_api_and_waits_for_the_end():
    cancelled = asyncio.Event()
    posted = []

    async def stream():
        yield _frames(EVENTS[:2])
        await cancelled.wait()
        yield _frames(EVENTS[2:], 2)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(request.url.path)
            cancelled.set()
            return httpx.Response(200, json={})
        return httpx.Response(200, stream=_AsyncBytes(stream()))

    api = ApiClient("http://api", transport=httpx.MockTransport(handler))
    cancel = asyncio.Event()
    got = []

    def on_event(event):
        got.append(event)
        if len(got) == 2:
            cancel.set()

    await asyncio.wait_for(api.follow(RUN, on_event, cancel=cancel), 10)
    await api.close()
    assert posted == [f"/v1/runs/{RUN}/cancel"]
    assert got == EVENTS


class _AsyncBytes(httpx.AsyncByteStream):
    def __init__(self, chunks) -> None:
        self._chunks = chunks

    async def __aiter__(self):
        async for chunk in self._chunks:
            yield chunk


def test_api_option_needs_a_team_and_team_needs_api(capsys):
    assert cli.main(["--api", "http://x", "q"]) == 2
    assert "--team NAME" in capsys.readouterr().err
    assert cli.main(["--team", "solo", "q"]) == 2
    assert "go with --api" in capsys.readouterr().err
    assert cli.main(["--api", "http://x", "--team", "a", "--model", "m", "q"]) == 2
    assert "exclusive" in capsys.readouterr().err


def test_serve_default_providers_leave_out_local_but_up_keeps_it():
    served = providers(None, local=False)
    assert "local" not in served and "chatcompletion" in served and "openai" in served
    assert "local" in providers(None)
    assert providers("a, b,a") == ["a", "b"]
    assert json.dumps(served)  # plain strings

"""A thin OpenAI-compatible HTTP proxy in front of llama.cpp's server.

It forwards plain requests unchanged (streams chunk by chunk) and fixes tool calls
for small models:

- ``tool_choice: "required"``: text first, then a short call decoded under a JSON-schema
  grammar (``text_first``): the model answers in prose, which small models write far
  better than JSON strings, and only the call itself is constrained;
- a named ``tool_choice``: the whole response is the call, under the grammar;
- ``auto``: text-JSON calls in free answers are turned into ``tool_calls``.

Streamed, all of them forward text and tool-call arguments as llama.cpp generates them:
nothing waits for the end of the response except text that may still turn out to be a
call's head.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from . import timings
from .calls import tool_name
from .text_first import call_request, text_request, wants_text
from .toolcalls import (
    CallArguments,
    CallStart,
    ForcedCallStream,
    StreamingTextToolCalls,
    StreamOut,
    ToolChoiceError,
    extract_tool_calls,
    forced_tools,
    messages_without_tools,
    new_call_id,
    parse_forced_call,
    tool_call_schema,
    tools_note,
)

__all__ = ["build_app", "start_proxy"]

log = structlog.get_logger("massgen_local_model.proxy")

JsonObj = dict[str, Any]
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_UPSTREAM = web.AppKey("upstream", str)
_ALIAS = web.AppKey("alias", str)
_SESSION = web.AppKey("session", aiohttp.ClientSession)


def build_app(upstream: str, alias: str) -> web.Application:
    """Build the proxy application.

    Args:
        upstream: Base URL of llama.cpp's server, e.g. ``http://127.0.0.1:8081``.
        alias: Model name reported by ``/v1/models`` and in responses.
    """
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_UPSTREAM] = upstream.rstrip("/")
    app[_ALIAS] = alias

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        # Generation can take minutes: no total timeout, only a connect timeout.
        timeout = aiohttp.ClientTimeout(total=None, connect=10)
        # A fresh loopback connection per request (costs well under a millisecond): a
        # pooled one may have been closed by llama.cpp's server after its last response,
        # and a POST written to it fails ("Can not write request body").
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(
            timeout=timeout, read_bufsize=1 << 20, connector=connector
        ) as session:
            app[_SESSION] = session
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_route("*", "/{tail:.*}", _passthrough)
    return app


async def start_proxy(
    upstream: str, alias: str, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Start serving the proxy on the running loop.

    Returns:
        The runner (``await runner.cleanup()`` stops it) and the bound port.
    """
    runner = web.AppRunner(build_app(upstream, alias), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, bound


@contextlib.contextmanager
def _client_may_leave() -> Iterator[None]:
    """Swallow the reset raised when the client disconnects mid-stream.

    Leaving the upstream request's context then closes that connection, which makes
    llama.cpp stop generating for it.
    """
    try:
        yield
    except ConnectionResetError:
        log.info("client_disconnected")


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


async def _health(request: web.Request) -> web.Response:
    app = request.app
    try:
        async with app[_SESSION].get(app[_UPSTREAM] + "/health") as resp:
            ok = resp.status == 200
    except aiohttp.ClientError:
        ok = False
    body = {"status": "ok" if ok else "unavailable", "model": app[_ALIAS]}
    return web.json_response(body, status=200 if ok else 503)


async def _models(request: web.Request) -> web.Response:
    alias = request.app[_ALIAS]
    return web.json_response(
        {
            "object": "list",
            "data": [{"id": alias, "object": "model", "created": 0, "owned_by": "local"}],
        }
    )


async def _passthrough(request: web.Request) -> web.StreamResponse:
    app = request.app
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
    async with app[_SESSION].request(
        request.method,
        app[_UPSTREAM] + request.rel_url.path_qs,
        data=await request.read(),
        headers=headers,
    ) as up:
        return await _relay(request, up)


async def _relay(request: web.Request, up: aiohttp.ClientResponse) -> web.StreamResponse:
    """Copy an upstream response to the client as it arrives."""
    resp = web.StreamResponse(status=up.status)
    resp.content_type = up.content_type
    if up.content_type == "text/event-stream":
        resp.headers["Cache-Control"] = "no-cache"
    await resp.prepare(request)
    tail = b""
    with _client_may_leave():
        async for block in up.content.iter_any():
            await resp.write(block)
            tail = (tail + block)[-4096:]  # where llama.cpp's final timings are
        await resp.write_eof()
    timings.note_tail(tail)
    return resp


async def _chat(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "request body is not valid JSON")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "request body must be an object with a 'messages' list")
    tools = body.get("tools") or []
    try:
        forced = forced_tools(tools, body.get("tool_choice"))
    except ToolChoiceError as exc:
        return _error(400, str(exc))
    started = time.monotonic()
    path = (
        "forced" if forced else ("auto" if tools and body.get("tool_choice") != "none" else "plain")
    )
    if forced and body.get("tool_choice") == "required":
        path = "text_first"
    body["model"] = request.app[_ALIAS]
    with timings.collecting() as steps:
        try:
            return await _route(request, body, path, forced, tools)
        finally:
            log.info(
                "chat_completion",
                path=path,
                stream=bool(body.get("stream")),
                messages=len(body["messages"]),
                tools=len(tools),
                seconds=round(time.monotonic() - started, 3),
                **timings.fields(steps),
            )


async def _route(
    request: web.Request, body: JsonObj, path: str, forced: list[JsonObj], tools: list[JsonObj]
) -> web.StreamResponse:
    if path == "text_first":
        return await _text_first(request, body, forced or [])
    if forced:
        return await _forced(request, body, forced)
    if path == "auto":
        return await _auto(request, body, {t["function"]["name"] for t in tools})
    async with _post(request, body) as up:
        return await _relay(request, up)


def _post(request: web.Request, body: JsonObj) -> Any:
    app = request.app
    return app[_SESSION].post(app[_UPSTREAM] + "/v1/chat/completions", json=body)


async def _upstream_error(up: aiohttp.ClientResponse) -> web.Response:
    return web.Response(status=up.status, body=await up.read(), content_type=up.content_type)


async def _sse_events(up: aiohttp.ClientResponse) -> AsyncIterator[JsonObj]:
    """Parse llama.cpp's SSE stream into chunk objects (stops at ``[DONE]``)."""
    async for raw in up.content:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        chunk = json.loads(data)
        timings.note(chunk)
        yield chunk


async def _start_sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers=_SSE_HEADERS)
    await resp.prepare(request)
    return resp


async def _send(resp: web.StreamResponse, chunk: JsonObj) -> None:
    await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")


def _chunk_like(template: JsonObj, delta: JsonObj, finish: str | None = None) -> JsonObj:
    """A chunk with the id/created/model of ``template`` and one choice."""
    return {
        "id": template.get("id", "chatcmpl-local"),
        "object": "chat.completion.chunk",
        "created": template.get("created", int(time.time())),
        "model": template.get("model", ""),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


# ---------------------------------------------------------------- forced calls


async def _forced(request: web.Request, body: JsonObj, tools: list[JsonObj]) -> web.StreamResponse:
    up_body = {
        k: v
        for k, v in body.items()
        if k not in ("tools", "tool_choice", "parallel_tool_calls", "response_format")
    }
    up_body["messages"] = messages_without_tools(body["messages"], tools_note(tools, forced=True))
    up_body["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "tool_call", "schema": tool_call_schema(tools)},
    }
    async with _post(request, up_body) as up:
        if up.status != 200:
            return await _upstream_error(up)
        if not body.get("stream"):
            return web.json_response(_forced_response(await up.json()))
        return await _forced_stream(request, up)


def _forced_response(data: JsonObj) -> JsonObj:
    choice = data["choices"][0]
    text = choice["message"].get("content") or ""
    try:
        call = parse_forced_call(text)
    except ValueError:
        # Cut short (max_tokens): hand the partial text back so the caller sees why.
        return data
    choice["message"] = {"role": "assistant", "content": None, "tool_calls": [call.to_openai()]}
    choice["finish_reason"] = "tool_calls"
    return data


async def _forced_stream(request: web.Request, up: aiohttp.ClientResponse) -> web.StreamResponse:
    resp = await _start_sse(request)
    parser = ForcedCallStream()
    call_id = new_call_id()
    with _client_may_leave():
        async for chunk in _sse_events(up):
            choices = chunk.get("choices") or []
            if not choices:
                await _send(resp, chunk)  # usage-only chunk
                continue
            choice = choices[0]
            delta = choice.get("delta") or {}
            if delta.get("role"):
                await _send(resp, _chunk_like(chunk, {"role": "assistant", "content": None}))
            name, args = parser.feed(delta.get("content") or "")
            if name is not None:
                head = {"index": 0, "id": call_id, "type": "function"}
                head["function"] = {"name": name, "arguments": ""}
                await _send(resp, _chunk_like(chunk, {"tool_calls": [head]}))
            if args:
                await _send(resp, _args_chunk(chunk, args))
            finish = choice.get("finish_reason")
            if finish:
                if parser.name is None:
                    # Never became a call (cut short): forward the raw text as content.
                    await _send(resp, _chunk_like(chunk, {"content": parser.text}))
                elif rest := parser.finish():
                    await _send(resp, _args_chunk(chunk, rest))
                reason = "tool_calls" if parser.name and finish != "length" else finish
                final = _chunk_like(chunk, {}, reason)
                for key in ("usage", "timings"):
                    if key in chunk:
                        final[key] = chunk[key]
                await _send(resp, final)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
    return resp


def _args_chunk(template: JsonObj, args: str) -> JsonObj:
    return _chunk_like(template, {"tool_calls": [{"index": 0, "function": {"arguments": args}}]})


# ---------------------------------------------------------------- free answers


async def _auto(request: web.Request, body: JsonObj, names: set[str]) -> web.StreamResponse:
    async with _post(request, body) as up:
        if up.status != 200:
            return await _upstream_error(up)
        if not body.get("stream"):
            return web.json_response(_auto_response(await up.json(), names))
        return await _auto_stream(request, up, names)


def _auto_response(data: JsonObj, names: set[str]) -> JsonObj:
    choice = data["choices"][0]
    message = choice["message"]
    if message.get("tool_calls") or not message.get("content"):
        return data
    content, calls = extract_tool_calls(message["content"], names)
    if calls:
        message["content"] = content
        message["tool_calls"] = [c.to_openai() for c in calls]
        choice["finish_reason"] = "tool_calls"
    return data


async def _auto_stream(
    request: web.Request, up: aiohttp.ClientResponse, names: set[str]
) -> web.StreamResponse:
    resp = await _start_sse(request)
    calls = StreamingTextToolCalls(names)
    with _client_may_leave():
        async for chunk in _sse_events(up):
            choices = chunk.get("choices") or []
            if not choices:
                await _send(resp, chunk)
                continue
            choice = choices[0]
            delta = choice.get("delta") or {}
            finish = choice.get("finish_reason")
            if delta.get("tool_calls"):
                calls.recognise = False  # the model makes native calls: leave its text be
            content = delta.pop("content", None)
            out: list[StreamOut] = calls.feed(content) if content else []
            if finish:
                out += calls.finish()
                if calls.calls and finish != "length":
                    choice["finish_reason"] = "tool_calls"
            for piece in out:
                await _send(resp, _piece_chunk(chunk, piece))
            if delta or finish or chunk.get("usage"):
                await _send(resp, chunk)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
    return resp


def _piece_chunk(template: JsonObj, piece: StreamOut) -> JsonObj:
    if isinstance(piece, CallStart):
        head = {"index": piece.index, "id": piece.id, "type": "function",
                "function": {"name": piece.name, "arguments": ""}}  # fmt: skip
        return _chunk_like(template, {"tool_calls": [head]})
    if isinstance(piece, CallArguments):
        args = {"index": piece.index, "function": {"arguments": piece.text}}
        return _chunk_like(template, {"tool_calls": [args]})
    return _chunk_like(template, {"content": piece})


# ---------------------------------------------------------------- required calls: text first


class _TextThenCall:
    """One ``tool_choice: "required"`` response: the text step, then the call step.

    ``pieces()`` yields the content text as the model writes it, then the call
    (``CallStart``, ``CallArguments``); afterwards ``finish``, ``usage`` and
    ``template`` (id, created, model of the upstream chunks) describe the response.
    ``usage`` counts the conversation once, as for one response: the text step's
    prompt, then of the call step's prompt only what it adds (the text and the tools
    note; the rest is llama.cpp's cached prefix). A text step cut at a call the model
    began itself reports no usage (llama.cpp sends it at the end): its tokens are
    counted one per streamed chunk, and the call step's whole prompt is counted.
    """

    def __init__(
        self,
        request: web.Request,
        body: JsonObj,
        tools: list[JsonObj],
        first: Any,
        *,
        text_step: bool = True,
    ) -> None:
        self.request = request
        self.body = body
        self.tools = tools
        self.first = first
        """The first step's upstream response (status 200, not read yet)."""
        self.text_step = text_step
        """False: no text is asked for (``wants_text``) and ``first`` is the call step's."""
        self.text = ""
        self.call_name: str | None = None
        self.finish = "stop"
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.template: JsonObj = {}
        self.cut_at_call = False

    def _count(self, usage: JsonObj | None, chunks: int, *, prefix_counted: bool) -> None:
        usage = usage or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        if prefix_counted:
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
            prompt = max(0, prompt - int(cached))
        completion = int(usage.get("completion_tokens") or chunks)
        self.usage["prompt_tokens"] += prompt
        self.usage["completion_tokens"] += completion
        self.usage["total_tokens"] += prompt + completion

    async def pieces(self) -> AsyncIterator[StreamOut]:
        async for piece in self._text_step():
            yield piece
        async for piece in self._call_step():
            yield piece

    async def _text_step(self) -> AsyncIterator[StreamOut]:
        if not self.text_step:
            return
        calls = StreamingTextToolCalls({tool_name(t) for t in self.tools})
        usage: JsonObj | None = None
        chunks = 0
        try:
            async for chunk in _sse_events(self.first):
                self.template = self.template or chunk
                usage = chunk.get("usage") or usage
                choices = chunk.get("choices") or []
                if not choices:
                    continue
                content = (choices[0].get("delta") or {}).get("content")
                chunks += bool(content)
                out = calls.feed(content) if content else []
                if choices[0].get("finish_reason"):
                    self.finish = choices[0]["finish_reason"]
                    out += calls.finish()
                for piece in out:
                    if not isinstance(piece, str):
                        self.cut_at_call = True  # the model began a call: constrain it
                        break
                    self.text += piece
                    yield piece
                if self.cut_at_call:
                    break
        except aiohttp.ClientError as error:
            # The text so far went out; the call step still ends the response.
            log.warning("text_step_failed", error=repr(error))
        finally:
            # Closing the connection stops llama.cpp generating (the cut case) and frees
            # the slot for the call step, which then reuses its cached prefix.
            self.first.close()
        self._count(None if self.cut_at_call else usage, chunks, prefix_counted=False)

    async def _call_step(self) -> AsyncIterator[StreamOut]:
        step = call_request(self.body, self.tools, self.text, tool_call_schema)
        parser = ForcedCallStream()
        call_id = new_call_id()
        usage: JsonObj | None = None
        finish = None
        chunks = 0
        if self.text_step and step.head is not None and step.head.fixed:
            # One tool, no argument left to choose: the call is known without the model.
            name, args = parser.feed(step.head.call)
            self.call_name = name
            yield CallStart(0, call_id, str(name))
            yield CallArguments(0, args + parser.finish())
            self.finish = "tool_calls"
            return
        # Without a text step the call step's response is the one already opened.
        opened = (
            _post(self.request, step.request)
            if self.text_step
            else contextlib.nullcontext(self.first)
        )
        try:
            async with opened as up:
                if up.status != 200:
                    log.warning("call_step_failed", status=up.status, body=(await up.text())[:300])
                    return
                # llama.cpp streams only what it adds to the head it was given.
                if step.head is not None:
                    self.call_name, args = parser.feed(step.head.prefix)
                    yield CallStart(0, call_id, str(self.call_name))
                    if args:
                        yield CallArguments(0, args)
                async for chunk in _sse_events(up):
                    self.template = self.template or chunk
                    usage = chunk.get("usage") or usage
                    choices = chunk.get("choices") or []
                    if not choices:
                        continue
                    content = (choices[0].get("delta") or {}).get("content") or ""
                    chunks += bool(content)
                    name, args = parser.feed(content)
                    if name is not None:
                        self.call_name = name
                        yield CallStart(0, call_id, name)
                    if args:
                        yield CallArguments(0, args)
                    finish = choices[0].get("finish_reason") or finish
        except aiohttp.ClientError as error:
            # The text already went out: end the response without a (whole) call, which
            # the caller answers with a reminder, rather than break the stream.
            log.warning("call_step_failed", error=repr(error))
            self.finish = "length" if parser.name is not None else "stop"
            return
        if parser.name is not None and (rest := parser.finish()):
            yield CallArguments(0, rest)
        self._count(usage, chunks, prefix_counted=self.usage["prompt_tokens"] > 0)
        if parser.name is not None:
            self.finish = "length" if finish == "length" else "tool_calls"
        elif finish == "length":
            self.finish = "length"

    def final_chunk(self) -> JsonObj:
        chunk = _chunk_like(self.template, {}, self.finish)
        chunk["usage"] = dict(self.usage)
        return chunk

    def log_fields(self) -> JsonObj:
        return {"text_chars": len(self.text), "call": self.call_name, "cut": self.cut_at_call}


async def _text_first(
    request: web.Request, body: JsonObj, tools: list[JsonObj]
) -> web.StreamResponse:
    app = request.app
    url = app[_UPSTREAM] + "/v1/chat/completions"
    text_step = wants_text(tools)
    opening = (
        text_request(body) if text_step else call_request(body, tools, "", tool_call_schema).request
    )
    first = await app[_SESSION].post(url, json=opening)
    try:
        if first.status != 200:
            return await _upstream_error(first)
        steps = _TextThenCall(request, body, tools, first, text_step=text_step)
        if not body.get("stream"):
            return web.json_response(await _text_first_response(steps))
        resp = await _start_sse(request)
        with _client_may_leave():
            started = False
            async with contextlib.aclosing(steps.pieces()) as pieces:
                async for piece in pieces:
                    if not started:
                        started = True
                        role = {"role": "assistant", "content": None}
                        await _send(resp, _chunk_like(steps.template, role))
                    await _send(resp, _piece_chunk(steps.template, piece))
            await _send(resp, steps.final_chunk())
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        log.info("text_first", **steps.log_fields())
        return resp
    finally:
        first.close()


async def _text_first_response(steps: _TextThenCall) -> JsonObj:
    call_id, name, args = "", "", []
    async with contextlib.aclosing(steps.pieces()) as pieces:
        async for piece in pieces:
            if isinstance(piece, CallStart):
                call_id, name = piece.id, piece.name
            elif isinstance(piece, CallArguments):
                args.append(piece.text)
    message: JsonObj = {"role": "assistant", "content": steps.text or None}
    if name:
        call = {"id": call_id, "type": "function",
                "function": {"name": name, "arguments": "".join(args)}}  # fmt: skip
        message["tool_calls"] = [call]
    log.info("text_first", **steps.log_fields())
    t = steps.template
    return {
        "id": t.get("id", "chatcmpl-local"),
        "object": "chat.completion",
        "created": t.get("created", int(time.time())),
        "model": t.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": steps.finish}],
        "usage": dict(steps.usage),
    }

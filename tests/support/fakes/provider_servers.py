"""Scripted fake providers speaking their own wire protocols, on loopback.

The OpenAI chat-completions fake (``openai_server``) covers every OpenAI-protocol
backend. The providers whose built-in tools (web search, code execution) litellm reaches
through other protocols get a fake each here:

- ``FakeAnthropicServer``: Anthropic Messages (``POST /v1/messages``, SSE events);
- ``FakeGeminiServer``: Gemini ``streamGenerateContent?alt=sse`` (and ``generateContent``);
- ``FakeResponsesServer``: the OpenAI Responses API (``POST /v1/responses``, SSE events),
  which litellm uses for OpenAI's and xAI's built-in tools.

Like ``FakeOpenAIServer`` they fail from both ends: every request is recorded with its
path, headers and JSON body (what litellm actually sent); a request beyond the script
gets HTTP 500 and is remembered; ``assert_complete()`` fails on unused replies and on
unexpected requests. A reply is built with the protocol's helpers, as a list of blocks:

    server = FakeAnthropicServer().start()
    server.script([anthropic.reply(
        anthropic.web_search("capital of France", [("Paris", "https://ex.org/paris")]),
        anthropic.text("Paris.", cite=("Paris", "https://ex.org/paris")),
        anthropic.tool_use("new_answer", {"content": "Paris"}),
    )])
    # backend: {type: claude, model: m, base_url: server.base_url, api_key: k}
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .http_fake import ThreadedFake

__all__ = [
    "FakeAnthropicServer",
    "FakeGeminiServer",
    "FakeResponsesServer",
    "ProviderRequest",
    "Reply",
    "anthropic",
    "gemini",
    "responses",
]

UNEXPECTED = "unexpected model call"


@dataclass(frozen=True)
class Reply:
    """One scripted response: SSE events (``(event name or None, payload)``) or an error."""

    events: tuple[tuple[str | None, dict[str, Any]], ...] = ()
    status: int = 200
    error: dict[str, Any] | None = None
    whole: dict[str, Any] | None = None
    """The non-streaming body, for a request that does not ask for a stream."""


@dataclass
class ProviderRequest:
    """One request as the server received it."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Names lowercased."""
    body: dict[str, Any]


@dataclass
class _ScriptedServer(ThreadedFake):
    """Threaded HTTP server on 127.0.0.1 that answers POSTs on its routes from a script."""

    requests: list[ProviderRequest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _script: list[Reply] = field(default_factory=list)
    _behaviour: Callable[[ProviderRequest], Reply] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def routes(self, path: str) -> bool:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    # -- lifecycle (start / stop / with / origin: ``ThreadedFake``) -----------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        return Handler

    def script(self, replies: Iterable[Reply]) -> None:
        """Append ``replies``; each request consumes the next one."""
        with self._lock:
            self._script.extend(replies)

    def behave(self, behaviour: Callable[[ProviderRequest], Reply]) -> None:
        """Answer with ``behaviour(request)`` once the script is used up: for runs whose
        number of model calls depends on timing, where the reply is decided from the
        conversation as an agent would."""
        with self._lock:
            self._behaviour = behaviour

    def assert_complete(self) -> None:
        """Fail when scripted replies were left unused or a request had none."""
        problems = list(self.errors)
        if self._script:
            problems.append(f"{len(self._script)} scripted reply(s) never requested")
        if problems:
            raise AssertionError(f"{self.name}: " + "; ".join(problems))

    def _take(self, request: ProviderRequest) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.pop(0)
            behaviour = self._behaviour
            if behaviour is None:
                self.errors.append(f"{UNEXPECTED} (request {len(self.requests)}: {request.path})")
                return None
        try:  # outside the lock: a behaviour may look at the recorded requests
            return behaviour(request)
        except Exception as error:  # noqa: BLE001 - reported at teardown, answered with 500
            with self._lock:
                self.errors.append(f"behaviour failed on request {request.path}: {error!r}")
            return None


class _Handler(BaseHTTPRequestHandler):
    server_fake: _ScriptedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.server_fake.routes(parts.path):
            self._json(404, {"error": {"message": f"no route {parts.path}"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON"}})
            return
        request = ProviderRequest(
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        reply = self.server_fake._take(request)
        try:
            if reply is None:
                self._json(500, {"error": {"message": UNEXPECTED, "type": "fake_error"}})
            elif reply.error is not None:
                self._json(reply.status, reply.error)
            elif self._wants_stream(request) or reply.whole is None:
                self._sse(reply.events)
            else:
                self._json(200, reply.whole)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _wants_stream(request: ProviderRequest) -> bool:
        return bool(request.body.get("stream")) or request.path.endswith(":streamGenerateContent")

    def _sse(self, events: Iterable[tuple[str | None, dict[str, Any]]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, payload in events:
            head = f"event: {name}\n".encode() if name else b""
            self.wfile.write(head + b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()
        self.close_connection = True

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):04d}"


# -- Anthropic Messages ----------------------------------------------------------------


class FakeAnthropicServer(_ScriptedServer):
    """Anthropic Messages API; ``base_url`` is the origin (litellm adds ``/v1/messages``)."""

    name = "fake-anthropic"

    def routes(self, path: str) -> bool:
        return path.rstrip("/").endswith("/v1/messages")

    @property
    def base_url(self) -> str:
        return self.origin


def _anthropic_text(value: str, cite: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Content-block events (without index) of a text block, with one citation."""
    events: list[dict[str, Any]] = [{"start": {"type": "text", "text": ""}}]
    if cite is not None:
        title, url = cite
        citation = {
            "type": "web_search_result_location",
            "cited_text": value[:40],
            "url": url,
            "title": title,
            "encrypted_index": "EiQ=",
        }
        events.append({"delta": {"type": "citations_delta", "citation": citation}})
    events.append({"delta": {"type": "text_delta", "text": value}})
    return [{"block": events}]


def _anthropic_tool_use(name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    text = json.dumps(args)
    return [{
        "block": [
            {"start": {"type": "tool_use", "id": _id("toolu"), "name": name, "input": {}}},
            {"delta": {"type": "input_json_delta", "partial_json": text[: len(text) // 2]}},
            {"delta": {"type": "input_json_delta", "partial_json": text[len(text) // 2 :]}},
        ],
        "stop": "tool_use",
    }]  # fmt: skip


def _anthropic_server_tool(
    name: str, args: dict[str, Any], result: dict[str, Any]
) -> list[dict[str, Any]]:
    tool_id = _id("srvtoolu")
    return [
        {"block": [
            {"start": {"type": "server_tool_use", "id": tool_id, "name": name, "input": {}}},
            {"delta": {"type": "input_json_delta", "partial_json": json.dumps(args)}},
        ]},
        {"block": [{"start": {"tool_use_id": tool_id, **result}}]},
    ]  # fmt: skip


def _anthropic_web_search(query: str, results: list[tuple[str, str]]) -> list[dict[str, Any]]:
    content = [
        {"type": "web_search_result", "title": title, "url": url,
         "encrypted_content": "EqgfCioIARgBIiQ3", "page_age": None}
        for title, url in results
    ]  # fmt: skip
    return _anthropic_server_tool(
        "web_search", {"query": query}, {"type": "web_search_tool_result", "content": content}
    )


def _anthropic_code(command: str, stdout: str) -> list[dict[str, Any]]:
    result = {
        "type": "bash_code_execution_tool_result",
        "content": {
            "type": "bash_code_execution_result",
            "stdout": stdout,
            "stderr": "",
            "return_code": 0,
            "content": [],
        },
    }
    return _anthropic_server_tool("bash_code_execution", {"command": command}, result)


def _anthropic_reply(*blocks: list[dict[str, Any]], model: str = "claude-fake") -> Reply:
    flat = [block for group in blocks for block in group]
    message_id = _id("msg")
    events: list[tuple[str | None, dict[str, Any]]] = [(
        "message_start",
        {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        }},
    )]  # fmt: skip
    stop_reason = "end_turn"
    for index, block in enumerate(flat):
        steps = block["block"]
        start = {"type": "content_block_start", "index": index, "content_block": steps[0]["start"]}
        events.append(("content_block_start", start))
        for step in steps[1:]:
            delta = {"type": "content_block_delta", "index": index, "delta": step["delta"]}
            events.append(("content_block_delta", delta))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        stop_reason = block.get("stop", stop_reason)
    events.append((
        "message_delta",
        {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
         "usage": {"output_tokens": 7}},
    ))  # fmt: skip
    events.append(("message_stop", {"type": "message_stop"}))
    return Reply(events=tuple(events))


def _anthropic_error(status: int, message: str) -> Reply:
    return Reply(
        status=status,
        error={"type": "error", "error": {"type": "invalid_request_error", "message": message}},
    )


anthropic = SimpleNamespace(
    reply=_anthropic_reply,
    text=_anthropic_text,
    tool_use=_anthropic_tool_use,
    web_search=_anthropic_web_search,
    code_execution=_anthropic_code,
    error=_anthropic_error,
)
"""Builders of Anthropic replies: ``reply(*blocks)`` with ``text``, ``tool_use``,
``web_search`` (a server tool use and its results), ``code_execution``; ``error``."""


# -- Gemini generateContent ------------------------------------------------------------


class FakeGeminiServer(_ScriptedServer):
    """Gemini API; ``base_url`` is the origin (litellm adds ``/models/M:streamGenerateContent``)."""

    name = "fake-gemini"

    def routes(self, path: str) -> bool:
        return path.endswith(":streamGenerateContent") or path.endswith(":generateContent")

    @property
    def base_url(self) -> str:
        return self.origin


def _gemini_text(value: str) -> list[dict[str, Any]]:
    return [{"text": value}]


def _gemini_call(name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"functionCall": {"name": name, "args": args}}]


def _gemini_code(code: str, output: str) -> list[dict[str, Any]]:
    return [
        {"executableCode": {"language": "PYTHON", "code": code}},
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": output}},
    ]


def _gemini_reply(
    *parts: list[dict[str, Any]],
    search: tuple[str, list[tuple[str, str]]] | None = None,
    model: str = "gemini-fake",
) -> Reply:
    """One chunk per part; ``search`` = (query, [(title, url)]) adds grounding metadata
    to the last chunk, citing every source for the whole text."""
    flat = [part for group in parts for part in group]
    chunks: list[dict[str, Any]] = []
    for position, part in enumerate(flat):
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
        if position == len(flat) - 1:
            candidate["finishReason"] = "STOP"
            if search is not None:
                query, sources = search
                text = "".join(p.get("text", "") for p in flat)
                candidate["groundingMetadata"] = {
                    "webSearchQueries": [query],
                    "groundingChunks": [{"web": {"uri": u, "title": t}} for t, u in sources],
                    "groundingSupports": [{
                        "segment": {"startIndex": 0, "endIndex": len(text), "text": text},
                        "groundingChunkIndices": list(range(len(sources))),
                    }],
                }  # fmt: skip
        chunks.append({"candidates": [candidate], "modelVersion": model, "responseId": "r1"})
    chunks[-1]["usageMetadata"] = {
        "promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 19,
    }  # fmt: skip
    whole = {
        "candidates": [{
            "content": {"role": "model", "parts": flat}, "finishReason": "STOP", "index": 0,
            **({"groundingMetadata": chunks[-1]["candidates"][0]["groundingMetadata"]}
               if search is not None else {}),
        }],
        "usageMetadata": chunks[-1]["usageMetadata"],
        "modelVersion": model,
    }  # fmt: skip
    return Reply(events=tuple((None, chunk) for chunk in chunks), whole=whole)


def _gemini_error(status: int, message: str) -> Reply:
    return Reply(
        status=status,
        error={"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}},
    )


gemini = SimpleNamespace(
    reply=_gemini_reply,
    text=_gemini_text,
    function_call=_gemini_call,
    code_execution=_gemini_code,
    error=_gemini_error,
)
"""Builders of Gemini replies: ``reply(*parts, search=(query, sources))`` with ``text``,
``function_call``, ``code_execution``; ``error``."""


# -- OpenAI Responses ------------------------------------------------------------------


class FakeResponsesServer(_ScriptedServer):
    """OpenAI Responses API (also xAI's); ``base_url`` ends in ``/v1``."""

    name = "fake-responses"

    def routes(self, path: str) -> bool:
        return path.rstrip("/").endswith("/responses")

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"


def _responses_text(value: str, cite: tuple[str, str] | None = None) -> dict[str, Any]:
    annotations = []
    if cite is not None:
        title, url = cite
        annotations.append(
            {"type": "url_citation", "url": url, "title": title,
             "start_index": 0, "end_index": len(value)}
        )  # fmt: skip
    return {"type": "message", "text": value, "annotations": annotations}


def _responses_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function_call", "name": name, "arguments": json.dumps(args)}


def _responses_web_search(query: str) -> dict[str, Any]:
    return {"type": "web_search_call", "query": query}


def _responses_code(code: str, logs: str) -> dict[str, Any]:
    return {"type": "code_interpreter_call", "code": code, "logs": logs}


def _responses_reply(*items: dict[str, Any], model: str = "gpt-fake") -> Reply:
    response_id = _id("resp")
    base = {"id": response_id, "object": "response", "created_at": 1, "model": model,
            "status": "in_progress", "output": [], "tools": [], "parallel_tool_calls": True,
            "tool_choice": "auto"}  # fmt: skip
    events: list[tuple[str | None, dict[str, Any]]] = []
    sequence = itertools.count()

    def emit(kind: str, **payload: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": next(sequence), **payload}))

    emit("response.created", response=base)
    emit("response.in_progress", response=base)
    output: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        kind = item["type"]
        if kind == "message":
            item_id = _id("msg")
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit("response.output_item.added", output_index=index, item={
                "type": "message", "id": item_id, "role": "assistant",
                "status": "in_progress", "content": []})  # fmt: skip
            emit("response.content_part.added", item_id=item_id, output_index=index,
                 content_index=0, part=part)  # fmt: skip
            emit("response.output_text.delta", item_id=item_id, output_index=index,
                 content_index=0, delta=item["text"], logprobs=[])  # fmt: skip
            for position, annotation in enumerate(item["annotations"]):
                emit("response.output_text.annotation.added", item_id=item_id,
                     output_index=index, content_index=0, annotation_index=position,
                     annotation=annotation)  # fmt: skip
            emit("response.output_text.done", item_id=item_id, output_index=index,
                 content_index=0, text=item["text"], logprobs=[])  # fmt: skip
            done_part = {"type": "output_text", "text": item["text"],
                         "annotations": item["annotations"], "logprobs": []}  # fmt: skip
            emit("response.content_part.done", item_id=item_id, output_index=index,
                 content_index=0, part=done_part)  # fmt: skip
            done = {"type": "message", "id": item_id, "role": "assistant",
                    "status": "completed", "content": [done_part]}  # fmt: skip
        elif kind == "function_call":
            item_id, call_id = _id("fc"), _id("call")
            started = {"type": "function_call", "id": item_id, "call_id": call_id,
                       "name": item["name"], "arguments": "", "status": "in_progress"}  # fmt: skip
            emit("response.output_item.added", output_index=index, item=started)
            arguments = item["arguments"]
            for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                emit("response.function_call_arguments.delta", item_id=item_id,
                     output_index=index, delta=piece)  # fmt: skip
            emit("response.function_call_arguments.done", item_id=item_id,
                 output_index=index, arguments=arguments)  # fmt: skip
            done = {**started, "arguments": arguments, "status": "completed"}
        elif kind == "web_search_call":
            item_id = _id("ws")
            emit(
                "response.output_item.added",
                output_index=index,
                item={"type": "web_search_call", "id": item_id, "status": "in_progress"},
            )
            for stage in ("in_progress", "searching", "completed"):
                emit(f"response.web_search_call.{stage}", item_id=item_id, output_index=index)
            done = {"type": "web_search_call", "id": item_id, "status": "completed",
                    "action": {"type": "search", "query": item["query"]}}  # fmt: skip
        elif kind == "code_interpreter_call":
            item_id = _id("ci")
            started = {"type": "code_interpreter_call", "id": item_id, "status": "in_progress",
                       "code": "", "container_id": "cntr_fake", "outputs": None}  # fmt: skip
            emit("response.output_item.added", output_index=index, item=started)
            emit("response.code_interpreter_call_code.delta", item_id=item_id,
                 output_index=index, delta=item["code"])  # fmt: skip
            emit("response.code_interpreter_call_code.done", item_id=item_id,
                 output_index=index, code=item["code"])  # fmt: skip
            emit("response.code_interpreter_call.completed", item_id=item_id, output_index=index)
            done = {**started, "status": "completed", "code": item["code"],
                    "outputs": [{"type": "logs", "logs": item["logs"]}]}  # fmt: skip
        else:  # pragma: no cover - builders only make the kinds above
            raise ValueError(kind)
        emit("response.output_item.done", output_index=index, item=done)
        output.append(done)
    usage = {"input_tokens": 12, "output_tokens": 7, "total_tokens": 19,
             "input_tokens_details": {"cached_tokens": 0},
             "output_tokens_details": {"reasoning_tokens": 0}}  # fmt: skip
    completed = {**base, "status": "completed", "output": output, "usage": usage}
    emit("response.completed", response=completed)
    return Reply(events=tuple(events), whole=completed)


def _responses_error(status: int, message: str) -> Reply:
    return Reply(
        status=status,
        error={"error": {"message": message, "type": "invalid_request_error", "code": None}},
    )


responses = SimpleNamespace(
    reply=_responses_reply,
    text=_responses_text,
    function_call=_responses_call,
    web_search=_responses_web_search,
    code_interpreter=_responses_code,
    error=_responses_error,
)
"""Builders of Responses API replies: ``reply(*items)`` with ``text`` (a message, with a
``url_citation``), ``function_call``, ``web_search`` and ``code_interpreter`` calls;
``error``."""

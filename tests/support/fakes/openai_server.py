"""A scripted fake model: a real HTTP server speaking OpenAI chat completions.

Each test scripts the responses per model name; every request consumes the next step
of its model's script. The server records every request, answers a request beyond the
script with HTTP 500 "unexpected model call" (and remembers it), and
``assert_complete()`` fails on unused steps and on unexpected calls, so a fake fails
from both ends.

Streaming follows the OpenAI SSE format (``data: {...}`` lines, ``data: [DONE]``),
with tool calls streamed as ``delta.tool_calls`` (index/id/type/name first, then
argument fragments) and usage in a final chunk when ``stream_options.include_usage``.

    server = FakeOpenAIServer().start()
    server.script("m1", [answer("42"), vote("agent1", "best")])
    # backend: {type: chatcompletion, model: m1, base_url: server.base_url}
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler
from typing import Any

from .http_fake import ThreadedFake

__all__ = [
    "FakeOpenAIServer",
    "RecordedRequest",
    "Step",
    "answer",
    "both",
    "error",
    "hang",
    "malformed",
    "text",
    "tool_call",
    "vote",
    "vote_first",
]

UNEXPECTED = "unexpected model call"


@dataclass(frozen=True)
class Step:
    """One scripted response. Build with the helpers below, not directly."""

    kind: str
    text: str = ""
    label: str = ""
    reason: str = ""
    status: int = 200
    message: str = ""
    args_text: str = ""
    seconds: float = 0.0
    then: Step | None = None
    token_delay: float | None = None
    """Seconds between streamed pieces (None: the server's default)."""
    tokens: int | None = None
    """Stream this many pieces in all: content padded with words (text steps), or words
    of content before the tool call, whose own pieces count too (tool-call steps)."""
    before: str = ""
    """Content streamed before the tool call(s) (tool-call steps; replaces the padding
    words of ``tokens``): an answer written as text, committed by the call."""


StepLike = Step | Callable[[dict[str, Any]], Step]


def answer(content: str, **options: Any) -> Step:
    """A ``new_answer`` tool call with ``content``."""
    return Step("answer", text=content, **options)


def vote(label: str, reason: str = "best answer", **options: Any) -> Step:
    """A ``vote`` tool call for ``label``."""
    return Step("vote", label=label, reason=reason, **options)


def text(content: str, **options: Any) -> Step:
    """Plain content, no tool call (a presentation, or a model ignoring the tools)."""
    return Step("text", text=content, **options)


def error(status: int, message: str) -> Step:
    """An HTTP error response in OpenAI's error format."""
    return Step("error", status=status, message=message)


def malformed(args_text: str = '{"content": "unterminated', **options: Any) -> Step:
    """A ``new_answer`` tool call whose arguments are not valid JSON."""
    return Step("malformed", args_text=args_text, **options)


def tool_call(name: str, arguments: dict[str, Any] | str, **options: Any) -> Step:
    """A call of any tool ``name`` (e.g. an MCP tool) with ``arguments``."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return Step("tool", text=name, args_text=args, **options)


def both(content: str = "an answer", label: str = "agent1", **options: Any) -> Step:
    """``new_answer`` and ``vote`` in one response."""
    return Step("both", text=content, label=label, **options)


def hang(seconds: float, then: Step | None = None) -> Step:
    """Accept the request and say nothing for ``seconds``; then serve ``then`` (or a 504)."""
    return Step("hang", seconds=seconds, then=then)


def vote_first(reason: str = "best answer", **options: Any) -> Callable[[dict[str, Any]], Step]:
    """A step that votes for the first label the request's ``vote`` tool offers."""

    def choose(request: dict[str, Any]) -> Step:
        for tool in request.get("tools") or ():
            function = tool.get("function", {})
            if function.get("name") == "vote":
                labels = function["parameters"]["properties"]["agent_id"].get("enum") or []
                if labels:
                    return vote(labels[0], reason, **options)
        raise AssertionError("vote_first: the request offers no vote tool with labels")

    return choose


@dataclass
class RecordedRequest:
    """One request the server received."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    stream: bool
    body: dict[str, Any]
    received_at: float = field(default_factory=time.time)
    """Epoch seconds at arrival (for latency measurements)."""
    headers: dict[str, str] = field(default_factory=dict)
    """HTTP headers as received, names lowercased (e.g. ``authorization``)."""


_PIECES = re.compile(r"\S+\s*|\s+")


def _pieces(value: str) -> list[str]:
    return _PIECES.findall(value) or [value]


def _fragments(value: str, size: int = 8) -> list[str]:
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


class _Closing(Exception):
    pass


_MEDIA_ROUTES = (
    ("/images/generations", "images"),
    ("/images/edits", "edits"),
    ("/audio/speech", "speech"),
    ("/audio/transcriptions", "transcriptions"),
)
"""Route ending -> the name ``script_media`` and ``media_requests`` use for it."""


def _form_fields(content_type: str, raw: bytes) -> dict[str, Any]:
    """A multipart body as ``{name: text}`` for plain fields and ``{name: [(file name,
    bytes), ...]}`` for files (a repeated name, as ``image[]``, keeps every file)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=email_policy).parsebytes(head + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            fields[str(name)] = payload.decode("utf-8")
        else:
            fields.setdefault(str(name), []).append((filename, payload))
    return fields


class FakeOpenAIServer(ThreadedFake):
    """The scripted OpenAI-protocol server (threads; binds 127.0.0.1 on a free port)."""

    name = "fake-openai"

    def __init__(self, token_delay: float = 0.0, tokens: int | None = None) -> None:
        self.token_delay = token_delay
        """Default seconds between streamed pieces."""
        self.tokens = tokens
        """Default ``tokens`` for steps that do not set it."""
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._scripts: dict[str, list[StepLike]] = {}
        self._media: dict[str, list[bytes]] = {}
        """Scripted files per media route and model (``script_media``)."""
        self.media_requests: list[tuple[str, dict[str, Any]]] = []
        """``(route, body)`` of every media request: its JSON, or its multipart form
        (``_form_fields``: files as ``(file name, bytes)`` lists)."""
        self._behaviours: dict[str, Callable[[dict[str, Any]], Step]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ids = itertools.count(1)

    # -- lifecycle (start / stop / with: ``ThreadedFake``) ----------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(_Handler):
            fake = server

        return Handler

    def closing(self) -> None:
        self._closing.set()  # streams paused mid-response end now

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the backend's ``base_url``."""
        return f"{self.origin}/v1"

    # -- scripting ------------------------------------------------------------------

    def script(self, model: str, steps: Iterable[StepLike]) -> None:
        """Append ``steps`` to ``model``'s script."""
        with self._lock:
            self._scripts.setdefault(model, []).extend(steps)

    def script_media(self, route: str, model: str, files: Iterable[bytes]) -> None:
        """Answer ``model``'s requests on ``route`` (``images`` for
        ``/images/generations``, ``edits`` for ``/images/edits``, ``speech`` for
        ``/audio/speech``, ``transcriptions`` for ``/audio/transcriptions``) with
        ``files`` in order: an image as ``b64_json``, speech as the response body, a
        transcript (UTF-8 text) as ``{"text": ...}``."""
        with self._lock:
            self._media.setdefault(f"{route}:{model}", []).extend(files)

    def _next_media(self, route: str, body: dict[str, Any]) -> bytes | None:
        key = f"{route}:{body.get('model')}"
        with self._lock:
            self.media_requests.append((route, body))
            files = self._media.get(key)
            if not files:
                self.errors.append(f"{UNEXPECTED} on {route} for model {body.get('model')!r}")
                return None
            return files.pop(0)

    def behave(self, model: str, behaviour: Callable[[dict[str, Any]], Step]) -> None:
        """Answer ``model``'s requests with ``behaviour(request)`` once its script is used up.

        For runs whose number of model calls depends on timing (restarts): the
        behaviour decides from the conversation, like an agent would.
        """
        with self._lock:
            self._behaviours[model] = behaviour

    def requests_for(self, model: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.model == model]

    def remaining(self) -> dict[str, int]:
        """Unused steps per model."""
        with self._lock:
            return {m: len(s) for m, s in self._scripts.items() if s}

    def assert_complete(self) -> None:
        """Fail when scripted steps were left unused or a request had no step."""
        problems = [
            f"{m}: {n} scripted step(s) never requested" for m, n in self.remaining().items()
        ]
        problems += [
            f"{k}: {len(v)} scripted file(s) never requested" for k, v in self._media.items() if v
        ]
        problems += self.errors
        if problems:
            raise AssertionError("fake model: " + "; ".join(problems))

    def _next_step(
        self, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Step | None:
        model = str(body.get("model"))
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    model=model,
                    messages=body.get("messages") or [],
                    tools=body.get("tools"),
                    tool_choice=body.get("tool_choice"),
                    stream=bool(body.get("stream")),
                    body=body,
                    headers=dict(headers or {}),
                )
            )
            script = self._scripts.get(model)
            behaviour = self._behaviours.get(model) if not script else None
            if behaviour is None and not script:
                self.errors.append(
                    f"{UNEXPECTED} for model {model!r} (request {len(self.requests)})"
                )
                return None
            step = behaviour if behaviour is not None else script.pop(0)
        # Called outside the lock: a behaviour may look at the recorded requests.
        if not isinstance(step, Step):
            step = step(body)
        return step

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._closing.wait(seconds):
            raise _Closing

    def _pacer(self, delay: float) -> Callable[[], None]:
        """Waits so that the n-th call returns n x ``delay`` after the first.

        Paced against the clock, not by sleeping ``delay`` each time: a provider
        generating at a fixed rate does not fall behind by each wake-up's lateness.
        """
        start = time.monotonic()
        count = itertools.count(1)

        def wait() -> None:
            self._sleep(start + next(count) * delay - time.monotonic())

        return wait

    # -- responses ------------------------------------------------------------------

    def _completion(self, step: Step) -> tuple[list[str], list[tuple[str, str]], str]:
        """(content pieces, [(tool name, arguments)], finish_reason) of a step."""
        tokens = step.tokens if step.tokens is not None else self.tokens
        if step.kind == "text":
            pieces = _pieces(step.text) if step.text else []
            if tokens is not None and len(pieces) < tokens:
                if pieces and not pieces[-1].endswith(" "):
                    pieces[-1] += " "
                pieces += [f"w{i} " for i in range(len(pieces), tokens)]
            return pieces, [], "stop"
        answer_args = json.dumps({"content": step.text})
        vote_args = json.dumps({"agent_id": step.label, "reason": step.reason})
        calls = {
            "answer": [("new_answer", answer_args)],
            "vote": [("vote", vote_args)],
            "both": [("new_answer", answer_args), ("vote", vote_args)],
            "malformed": [("new_answer", step.args_text)],
            "tool": [(step.text, step.args_text)],
        }[step.kind]
        call_pieces = sum(1 + len(_fragments(arguments)) for _, arguments in calls)
        preamble = [f"w{i} " for i in range(max(0, (tokens or 0) - call_pieces))]
        if step.before:
            preamble = _pieces(step.before)
        return preamble, calls, "tool_calls"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    server_version = "FakeOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": []})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        # Without the query: Azure's deployments route carries ``?api-version=...``.
        route = self.path.split("?", 1)[0].rstrip("/")
        media = next((name for end, name in _MEDIA_ROUTES if route.endswith(end)), None)
        if media is None and not route.endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        if media is not None:
            self._serve_media(media)
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if len(raw) < length:
            # The client went away mid-request (a call cancelled between its headers and
            # its body, as a worker does when a turn is restarted): nothing to answer,
            # and no request of a model (it would read as one for model None).
            self.close_connection = True
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON"}})
            return
        try:
            headers = {k.lower(): v for k, v in self.headers.items()}
            step = self.fake._next_step(body, headers)
            self._serve(body, step)
        except (_Closing, BrokenPipeError, ConnectionResetError):
            pass

    def _serve_media(self, route: str) -> None:
        """An images, edits, speech or transcriptions request: the next scripted file
        of its model (a transcription's "file" is the transcript's text)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        kind = self.headers.get("Content-Type") or ""
        if kind.startswith("multipart/form-data"):
            body = _form_fields(kind, raw)
        else:
            body = json.loads(raw or b"{}")
        data = self.fake._next_media(route, body)
        if data is None:
            self._error(500, UNEXPECTED)
        elif route == "transcriptions":
            self._json(200, {"text": data.decode("utf-8")})
        elif route in ("images", "edits"):
            item = {"b64_json": base64.b64encode(data).decode("ascii")}
            self._json(200, {"created": int(time.time()), "data": [item]})
        else:
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def _serve(self, body: dict[str, Any], step: Step | None) -> None:
        fake = self.fake
        if step is None:
            self._error(500, UNEXPECTED)
            return
        while step.kind == "hang":
            fake._sleep(step.seconds)
            if step.then is None:
                self._error(504, "hang ended without a response")
                return
            step = step.then
        if step.kind == "error":
            self._error(step.status, step.message)
            return
        pieces, calls, finish = fake._completion(step)
        delay = step.token_delay if step.token_delay is not None else fake.token_delay
        model = str(body.get("model"))
        completion_id = f"chatcmpl-fake-{next(fake._ids)}"
        prompt_tokens = sum(
            len(str(m.get("content") or "").split()) for m in body.get("messages") or []
        )
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(
                completion_id, model, pieces, calls, finish, delay, prompt_tokens, include_usage
            )
        else:
            fake._sleep(delay * (len(pieces) + len(calls)))
            self._json(
                200,
                _full_completion(completion_id, model, pieces, calls, finish, prompt_tokens),
            )

    def _stream(
        self,
        completion_id: str,
        model: str,
        pieces: list[str],
        calls: list[tuple[str, str]],
        finish: str,
        delay: float,
        prompt_tokens: int,
        include_usage: bool,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        created = int(time.time())
        sent = 0

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

        pace = self.fake._pacer(delay)
        chunk({"role": "assistant", "content": ""})
        for piece in pieces:
            pace()
            chunk({"content": piece})
            sent += 1
        for index, (name, arguments) in enumerate(calls):
            pace()
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": f"call_{completion_id[-6:]}_{index}",
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
            for fragment in _fragments(arguments):
                pace()
                chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                sent += 1
        chunk({}, finish)
        if include_usage:
            usage = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": sent,
                    "total_tokens": prompt_tokens + sent,
                },
            }
            self.wfile.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": "fake_error", "code": status}})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _full_completion(
    completion_id: str,
    model: str,
    pieces: list[str],
    calls: list[tuple[str, str]],
    finish: str,
    prompt_tokens: int,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces) or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": f"call_{completion_id[-6:]}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            for i, (name, arguments) in enumerate(calls)
        ]
    completion_tokens = len(pieces) + sum(len(_fragments(a)) for _, a in calls)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }

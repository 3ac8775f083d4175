"""OpenAI's videos API (Sora) beside its chat completions, on one fake.

``FakeOpenAIVideoServer`` is the scripted chat fake plus:

- ``POST /v1/videos`` (multipart: ``model``, ``prompt``, ``seconds``, ``size``): starts
  the next scripted job (``script_video``) and answers it ``queued``;
- ``GET /v1/videos/{id}``: ``in_progress`` for the job's first ``polls`` status
  requests, then ``completed`` (or ``failed`` with the scripted reason);
- ``GET /v1/videos/{id}/content``: the job's MP4 bytes (409 before it completed).

Every such request is recorded in ``video_calls`` as ``(method, path, body)``; a job
nobody scripted, an unknown id, or an early download lands in ``errors``, and a scripted
job never started fails ``assert_complete``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from .openai_server import UNEXPECTED, FakeOpenAIServer, _form_fields, _Handler

__all__ = ["FakeOpenAIVideoServer", "VideoJob"]


@dataclass
class VideoJob:
    """One scripted video job."""

    content: bytes = b""
    polls: int = 1
    """Status requests answered ``in_progress`` before the job ends."""
    error: str | None = None
    """The job fails with this reason (None: it completes with ``content``)."""
    id: str = ""
    seen: int = 0


class FakeOpenAIVideoServer(FakeOpenAIServer):
    """The chat fake with OpenAI's videos API (``base_url`` ends in ``/v1``)."""

    name = "fake-openai-videos"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.video_calls: list[tuple[str, str, Any]] = []
        self._queued: list[VideoJob] = []
        self._jobs: dict[str, VideoJob] = {}
        self._video_ids = itertools.count(1)

    def handler(self) -> type[_Handler]:
        server = self

        class Handler(_VideoHandler):
            fake = server

        return Handler

    def script_video(self, content: bytes = b"", polls: int = 1, error: str | None = None) -> None:
        """Queue the outcome of the next ``POST /v1/videos``."""
        with self._lock:
            self._queued.append(VideoJob(content=content, polls=polls, error=error))

    def assert_complete(self) -> None:
        if self._queued:
            self.errors.append(f"{len(self._queued)} scripted video job(s) never started")
        super().assert_complete()

    def video_reply(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """``(status, JSON object or MP4 bytes)`` for one videos request."""
        with self._lock:
            self.video_calls.append((method, path, body))
            parts = path.rstrip("/").split("/")  # ['', 'v1', 'videos', id?, 'content'?]
            if method == "POST" and len(parts) == 3:
                return self._start(body)
            job = self._jobs.get(parts[3]) if len(parts) > 3 else None
            if method != "GET" or job is None:
                self.errors.append(f"{UNEXPECTED}: {method} {path}")
                return 404, {"error": {"message": f"no video at {path}"}}
            if len(parts) == 5 and parts[4] == "content":
                if job.error is not None or job.seen <= job.polls:
                    self.errors.append(f"video {job.id} downloaded before it completed")
                    return 409, {"error": {"message": "video is not ready"}}
                return 200, job.content
            job.seen += 1
            return 200, _status(job)

    def _start(self, form: Any) -> tuple[int, Any]:
        if not self._queued:
            self.errors.append(f"{UNEXPECTED}: a video job nobody scripted")
            return 500, {"error": {"message": UNEXPECTED}}
        job = self._queued.pop(0)
        job.id = f"video_{next(self._video_ids)}"
        self._jobs[job.id] = job
        return 200, {"id": job.id, "object": "video", "status": "queued", "progress": 0,
                     "model": form.get("model"), "created_at": 1}  # fmt: skip


def _status(job: VideoJob) -> dict[str, Any]:
    out: dict[str, Any] = {"id": job.id, "object": "video", "model": "sora-2",
                           "created_at": 1, "status": "in_progress", "progress": 50}  # fmt: skip
    if job.seen > job.polls:
        if job.error is not None:
            out.update(status="failed", error={"code": "failed", "message": job.error})
        else:
            out.update(status="completed", progress=100, completed_at=2)
    return out


class _VideoHandler(_Handler):
    fake: FakeOpenAIVideoServer

    def _route(self) -> str | None:
        route = self.path.split("?", 1)[0].rstrip("/")
        return route if "/videos" in route else None

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        route = self._route()
        if route is None:
            super().do_GET()
            return
        self._answer(*self.fake.video_reply("GET", route, None))

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        route = self._route()
        if route is None:
            super().do_POST()
            return
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        form = _form_fields(self.headers.get("Content-Type") or "", raw)
        self._answer(*self.fake.video_reply("POST", route, form))

    def _answer(self, status: int, payload: Any) -> None:
        if isinstance(payload, bytes):
            self.send_response(status)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        else:
            self._json(status, payload)

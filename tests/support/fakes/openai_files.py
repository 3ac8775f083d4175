"""OpenAI's files and vector-store endpoints, beside its Responses API, on one fake.

``FakeOpenAIFilesServer`` answers ``POST /v1/responses`` from a script as
``FakeResponsesServer`` does, and keeps uploaded files and vector stores in memory:

- ``POST /v1/files`` (multipart: ``file``, ``purpose``, ``expires_after[...]``);
- ``POST /v1/vector_stores`` (JSON), ``GET /v1/vector_stores/{id}`` (indexed at once),
  ``DELETE /v1/vector_stores/{id}``, ``DELETE /v1/files/{id}``.

Every such call is recorded in ``calls`` as ``(method, path, body)``: the JSON body, or
the multipart form as ``{name: text | [(file name, bytes)]}``. An unknown id gets 404 and
is remembered in ``errors`` (``assert_complete`` fails on it).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .openai_server import _form_fields
from .provider_servers import FakeResponsesServer, _Handler

__all__ = ["FakeOpenAIFilesServer"]

_ids = itertools.count(1)


@dataclass
class FakeOpenAIFilesServer(FakeResponsesServer):
    """The Responses API plus files and vector stores (``base_url`` ends in ``/v1``)."""

    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_FilesHandler):
            server_fake = fake

        return Handler

    def store_action(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        """The reply to one files / vector-store request."""
        with self._lock:
            self.calls.append((method, path, body))
            parts = path.rstrip("/").split("/")  # ['', 'v1', 'files', id?]
            kind, ident = parts[2], parts[3] if len(parts) > 3 else None
            if method == "POST" and kind == "files" and ident is None:
                (name, data) = body["file"][0]
                file_id = f"file-{next(_ids)}"
                self.files[file_id] = (name, data)
                return 200, {"id": file_id, "object": "file", "bytes": len(data),
                             "created_at": 1, "filename": name, "purpose": body["purpose"]}  # fmt: skip
            if method == "POST" and kind == "vector_stores" and ident is None:
                store_id = f"vs_{next(_ids)}"
                self.stores[store_id] = body
                return 200, self._store(store_id, "in_progress")
            table = self.files if kind == "files" else self.stores
            if ident not in table:
                self.errors.append(f"{method} {path}: no such {kind[:-1]}")
                return 404, {"error": {"message": f"no {kind[:-1]} {ident}"}}
            if method == "GET":
                return 200, self._store(ident, "completed")
            del table[ident]
            what = "file" if kind == "files" else "vector_store.deleted"
            return 200, {"id": ident, "object": what, "deleted": True}

    def _store(self, store_id: str, status: str) -> dict[str, Any]:
        count = len(self.stores[store_id].get("file_ids", []))
        done = count if status == "completed" else 0
        return {"id": store_id, "object": "vector_store", "created_at": 1, "name":
                self.stores[store_id].get("name"), "status": status, "usage_bytes": 0,
                "file_counts": {"in_progress": count - done, "completed": done, "failed": 0,
                                "cancelled": 0, "total": count},
                "last_active_at": 1, "metadata": {}}  # fmt: skip


class _FilesHandler(_Handler):
    server_fake: FakeOpenAIFilesServer

    def _store_route(self) -> bool:
        return "/files" in self.path or "/vector_stores" in self.path

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        kind = self.headers.get("Content-Type", "")
        body: Any = None
        if raw and kind.startswith("multipart/"):
            body = _form_fields(kind, raw)
        elif raw:
            body = json.loads(raw)
        status, payload = self.server_fake.store_action(method, self.path.split("?")[0], body)
        self._json(status, payload)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        if self._store_route():
            self._answer("POST")
        else:
            super().do_POST()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._answer("GET")

    def do_DELETE(self) -> None:  # noqa: N802 - stdlib name
        self._answer("DELETE")

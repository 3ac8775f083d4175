"""Starting and stopping a fake served over HTTP: one threaded server on 127.0.0.1.

``FakeOpenAIServer`` and the provider fakes (``provider_servers``) differ in what they
answer, not in how they are served: each says which request handler serves it
(``handler``), and this base binds it to a free port, serves it on a daemon thread, and
stops it (``start`` / ``stop``, or ``with``).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Self

__all__ = ["ThreadedFake"]


class ThreadedFake:
    """A fake served by a threaded HTTP server on 127.0.0.1, on a free port."""

    name: ClassVar[str] = "fake"
    """The serving thread's name (seen in thread dumps of a hung test)."""
    _httpd: ThreadingHTTPServer | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this fake."""
        raise NotImplementedError

    def start(self) -> Self:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving (safe to call twice); ``closing`` runs first."""
        self.closing()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def closing(self) -> None:
        """Called as ``stop`` begins: wake handlers that are waiting (none here)."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

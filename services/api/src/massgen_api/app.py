"""The FastAPI application: ``create_app(settings)``.

    from massgen_api.app import create_app
    from massgen_api.settings import ApiSettings
    app = create_app(ApiSettings(nats_url=..., teams_dir=...))
    uvicorn.run(app, host=..., port=...)

The app connects to NATS in its lifespan (start-up fails when NATS is unreachable
or a team file is invalid). ``/healthz``, ``/readyz``, ``/metrics``, ``/`` (the web
page) and ``/openapi.json`` are open; every ``/v1`` route needs a bearer token (without
tokens the app refuses to start, unless ``single_user`` is set).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import TokenTable
from .errors import error_response, install_error_handlers
from .metrics import Metrics
from .routes import ApiContext, router
from .service import Backend
from .settings import ApiSettings
from .teams import load_teams

__all__ = ["BodyLimit", "create_app"]

log = structlog.get_logger("api")

_DESCRIPTION = """
HTTP face of MassGen-on-NATS: start multi-agent runs, follow their events (SSE), use a
team as an OpenAI model, hold multi-turn sessions.

* **Auth**: `Authorization: Bearer <token>` on every `/v1` route (tokens are configured
  hashed on the server, each with a tenant; runs and sessions are private to a tenant).
* **Errors**: one shape, `{"error": {message, type, code, path}, "detail": [{path, message}]}`;
  `path` is the JSON path of the problem (e.g. `body.config.agents[0].backend.type`).
* **Events**: `GET /v1/runs/{id}/events` replays from the start; send `Last-Event-ID` to resume.
"""


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413 (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    response = error_response(
                        413, f"request body larger than {self.limit} bytes", code="too_large"
                    )
                    await response(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise StarletteHTTPException(
                        413, f"request body larger than {self.limit} bytes"
                    )
            return message

        await self.app(scope, limited, send)


def _nats_trouble(error: BaseException) -> bool:
    """True for the errors of a NATS connection or JetStream that is failing over."""
    import nats.errors
    from nats.js.errors import APIError, KeyValueError

    if isinstance(error, KeyValueError):
        return False  # a key's own state (missing, changed): an answer, not an outage
    if isinstance(error, APIError):
        return (getattr(error, "code", None) or 0) >= 500
    return isinstance(error, nats.errors.Error | TimeoutError | ConnectionError)


def _static(name: str) -> str:
    return resources.files("massgen_api").joinpath("static", name).read_text(encoding="utf-8")


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the API application for ``settings`` (defaults: ``ApiSettings.from_env()``).

    Team files are read here, so a bad one fails at once with a ``ConfigError`` naming
    the file and key. NATS is connected when the app starts (its lifespan).
    """
    settings = settings or ApiSettings.from_env()
    settings.check_auth()  # no tokens and not single-user: refuse before anything starts
    teams = load_teams(settings.teams_dir)
    metrics = Metrics()
    backend = Backend(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        if not settings.auth_enabled:
            log.warning(
                "api.auth_disabled", reason="no tokens configured; every caller is 'public'"
            )
        log.info("api.started", teams=len(teams), auth=settings.auth_enabled)
        try:
            yield
        finally:
            await backend.stop()
            log.info("api.stopped")

    app = FastAPI(
        title="MassGen-on-NATS API",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ApiContext(
        settings=settings,
        backend=backend,
        teams=teams,
        tokens=TokenTable(settings.tokens),
        metrics=metrics,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.include_router(router)
    _handle_unexpected(app)
    _add_operations(app, backend, metrics)
    return app


def _handle_unexpected(app: FastAPI) -> None:
    """Answer an unexpected error: 503 (retry) when NATS is failing over, else 500."""

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        if _nats_trouble(error):
            # A NATS node restarting or a stream electing its leader: nothing was lost,
            # and the same request a moment later succeeds.
            log.warning("api.nats_unavailable", path=request.url.path, error=repr(error))
            return error_response(
                503, f"the message bus is briefly unavailable ({type(error).__name__}); retry",
                code="nats_unavailable", headers={"Retry-After": "1"},
            )  # fmt: skip
        log.error(
            "api.unhandled", path=request.url.path, error=type(error).__name__, exc_info=error
        )
        return error_response(500, "internal error", code="internal")


def _add_operations(app: FastAPI, backend: Backend, metrics: Metrics) -> None:
    """The open routes: liveness, readiness, metrics, and the web page."""

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "Not connected to NATS, or a stream is missing"}},
    )
    async def readyz() -> JSONResponse:
        """Readiness: NATS connected and the events and turns streams present."""
        ready, why = await backend.ready()
        return JSONResponse({"ready": ready, "reason": why}, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics_text() -> Response:
        """Prometheus text: runs by status, turn latency, tokens, queue depth per provider."""
        depth = await backend.queue_depth() if backend.connected else {}
        return Response(
            metrics.render(depth), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/app.js", include_in_schema=False)
    async def page_script() -> Response:
        return Response(_static("app.js"), media_type="text/javascript; charset=utf-8")

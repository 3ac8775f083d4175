"""Error replies: one JSON shape for every failure, with the JSON path of the problem."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "error_response", "install_error_handlers", "json_path"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error reply. ``problems`` are ``(json path, message)`` pairs."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        problems: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.problems = list(problems)
        self.headers = headers


def json_path(loc: Iterable[int | str]) -> str:
    """Render a location tuple as ``body.config.agents[1].backend.type``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    problems: Sequence[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
            "code": code,
            "path": problems[0][0] if problems else None,
        },
        "detail": [{"path": path, "message": text} for path, text in problems],
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_problems(error: RequestValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors():
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if item.get("type") == "extra_forbidden":
            message = "unknown key"
        problems.append((json_path(item.get("loc", ())), message))
    return problems


def install_error_handlers(app) -> None:
    """Map every exception to the one error shape; client mistakes never become 500."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(
            error.status,
            error.message,
            code=error.code,
            problems=error.problems,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = _validation_problems(error)
        summary = "; ".join(f"{path}: {message}" for path, message in problems[:5])
        return error_response(422, f"invalid request: {summary}", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(
            error.status_code, str(error.detail), headers=getattr(error, "headers", None)
        )

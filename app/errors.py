"""RFC 9457 problem+json for every error, each with a stable ``code``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from tempoflow.errors import ServiceUnavailable, TempoflowError

PROBLEM = "application/problem+json"

_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Unauthenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Content too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_failed", "Unprocessable content"),
    503: ("unavailable", "Service unavailable"),
}


def problem(
    request: Request | None,
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    hint: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:tempoflow:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
    if hint:
        body["hint"] = hint
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _loc_to_pointer(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        where, rest = parts[0], parts[1:]
        return f"{where}:/" + "/".join(rest) if where != "body" else "/" + "/".join(rest)
    return "/" + "/".join(parts)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TempoflowError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem(
        request,
        exc.status,
        exc.code,
        exc.title,
        exc.detail,
        hint=exc.hint,
        errors=exc.errors,
        extra=exc.extra,
        headers=headers,
    )


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"path": _loc_to_pointer(tuple(e["loc"])), "code": e["type"], "message": e["msg"]}
        for e in exc.errors()
    ]
    return problem(
        request,
        422,
        "request_invalid",
        "Unprocessable content",
        f"the request has {len(errors)} invalid field(s)",
        errors=errors,
        hint="see /docs for the request schema",
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    return problem(request, exc.status_code, code, title, str(exc.detail))


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    return problem(
        request,
        409,
        "conflict",
        "Conflict",
        "the change conflicts with a concurrent one",
        hint="retry the request",
    )


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    return await _domain(
        request,
        ServiceUnavailable(
            "the database is unavailable", code="database_unavailable", hint="retry later"
        ),
    )


async def _temporal_down(request: Request, exc: Exception) -> JSONResponse:
    message = exc.message if isinstance(exc, RPCError) else str(exc)
    return await _domain(
        request,
        ServiceUnavailable(
            f"Temporal refused the call: {message}", code="temporal_unavailable", hint="retry later"
        ),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every error once; a dependency that is down is a 503, never a 500."""
    app.add_exception_handler(TempoflowError, _domain)
    for exc in (OperationalError, InterfaceError, OSError):
        app.add_exception_handler(exc, _database_down)
    app.add_exception_handler(RPCError, _temporal_down)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(IntegrityError, _integrity)

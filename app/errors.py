"""RFC 9457 problem+json for every error, each with a stable ``code``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from referencing.exceptions import Unresolvable
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from temporalio.service import RPCError, RPCStatusCode

from tempoflow.errors import ErrorItem, ServiceUnavailable, TempoflowError, error_items

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


_RESERVED = frozenset({"type", "title", "status", "detail", "code", "instance"})


def problem(
    request: Request | None,
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    hint: str | None = None,
    errors: Sequence[ErrorItem | Mapping[str, Any]] | None = None,
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
        body["errors"] = [e.model_dump(exclude_none=True) for e in error_items(errors)]
    if extra:  # never over the standard members: `status` is always the HTTP status
        body.update({k: v for k, v in extra.items() if k not in _RESERVED})
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
        ErrorItem(path=_loc_to_pointer(tuple(e["loc"])), code=e["type"], message=e["msg"])
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


def _leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI's included routers
        yield from _leaf_routes(inner.routes) if inner is not None else (route,)


def _allowed_methods(request: Request, fallback: str) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods = {m.strip() for m in fallback.split(",") if m.strip()}
    probe = {**request.scope, "method": "\x00"}
    for route in _leaf_routes(request.app.router.routes):
        if route.matches(probe)[0] != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
    return problem(request, exc.status_code, code, title, str(exc.detail), headers=headers)


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    return problem(
        request,
        409,
        "conflict",
        "Conflict",
        "the change conflicts with a concurrent one",
        hint="retry the request",
    )


def _sqlstate(exc: DBAPIError) -> str:
    return str(getattr(exc.orig, "sqlstate", None) or "")


async def _database(request: Request, exc: Exception) -> JSONResponse:
    """Classify a database error by SQLSTATE class: what the request sent is a 4xx."""
    assert isinstance(exc, DBAPIError)
    state = _sqlstate(exc)
    # 22 data exception (value out of range, bad encoding, …); 54 program limit exceeded
    # (e.g. a value too large for an index): both are what the request sent.
    if state[:2] in {"22", "54"}:
        return problem(
            request,
            422,
            "data_invalid",
            "Unprocessable content",
            "the database cannot store a value of the request",
            hint="check string contents and number ranges against the API documentation",
        )
    if state.startswith("23") or isinstance(exc, IntegrityError):
        return await _integrity(request, exc)
    if state[:2] in {"08", "53", "57"} or isinstance(exc, OperationalError | InterfaceError):
        return await _database_down(request, exc)
    raise exc  # a programming error: let it be a 500 and be seen


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    return await _domain(
        request,
        ServiceUnavailable(
            "the database is unavailable", code="database_unavailable", hint="retry later"
        ),
    )


# Temporal refusing what the request asked for (not being down).
_REFUSALS = {RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION}


async def _temporal_down(request: Request, exc: Exception) -> JSONResponse:
    message = exc.message if isinstance(exc, RPCError) else str(exc)
    if isinstance(exc, RPCError) and exc.status in _REFUSALS:
        return problem(
            request,
            422,
            "temporal_refused",
            "Unprocessable content",
            f"Temporal refused the request: {message}",
            hint="the request exceeds what Temporal accepts (sizes, identifiers)",
        )
    return await _domain(
        request,
        ServiceUnavailable(
            f"Temporal refused the call: {message}", code="temporal_unavailable", hint="retry later"
        ),
    )


async def _unresolvable(request: Request, exc: Exception) -> JSONResponse:
    """A user-written JSON Schema whose `$ref` cannot be resolved is the request's fault."""
    return problem(
        request,
        422,
        "schema_unresolvable",
        "Unprocessable content",
        f"a JSON Schema has a $ref that cannot be resolved: {exc}",
        hint="$refs may only point inside the schema, e.g. #/$defs/item",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every error once; a dependency that is down is a 503, never a 500."""
    app.add_exception_handler(TempoflowError, _domain)
    app.add_exception_handler(OSError, _database_down)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(RPCError, _temporal_down)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Unresolvable, _unresolvable)

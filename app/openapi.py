"""The OpenAPI document declares every status an operation answers, errors as problem+json.

FastAPI declares only the decorator's status and a 422 of its own shape; the errors the
app really sends (``app.errors``) are RFC 9457 problems, and several operations answer
two success statuses (created / replaced, new / repeated).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from app.errors import PROBLEM
from tempoflow.errors import ErrorItem


class Problem(BaseModel):
    """RFC 9457 problem details; ``status`` is always the HTTP status code."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="urn:tempoflow:problem:<code>")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    code: str = Field(description="stable machine-readable code (see the API documentation)")
    instance: str | None = None
    hint: str | None = None
    errors: list[ErrorItem] | None = None


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "No API key, or an unknown or revoked one",
    403: "The API key lacks the role",
    404: "Not found in the caller's tenant",
    409: "Conflicts with the current state",
    410: "The definition was deleted (its versions stay readable)",
    413: "Request body (or batch) too large",
    422: "Invalid request (every failing field is listed)",
    503: "PostgreSQL or Temporal is unavailable; retry later",
}

# Operations answering a second success status: (method, path) -> {status: description}.
_MORE_SUCCESS = {
    ("put", "/v1/definitions/{key}"): {201: "Draft created (200: replaced)"},
    ("post", "/v1/definitions/{key}/publish"): {201: "New version published"},
    ("post", "/v1/runs"): {200: "The run of a repeated idempotencyKey"},
    ("put", "/v1/event-types/{name}"): {201: "Event type created (200: replaced)"},
    ("put", "/v1/secrets/{name}"): {201: "Secret created (200: replaced)"},
    ("post", "/v1/events"): {200: "Duplicate: the first receipt"},
    ("post", "/v1/events:batch"): {200: "Every event was a duplicate"},
}
_GONE = {("get", "/v1/definitions/{key}"), ("post", "/v1/runs")}
"""Besides ``/v1/definitions/{key}/…`` (not its versions): 410 for a deleted definition."""
_NO_CONFLICT = ("/validate", "/v1/expressions/evaluate", "/codec/decode", "/codec/encode")


def _error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    if not path.startswith(("/v1/", "/codec/")):
        return {503} if path == "/readyz" else set()
    statuses = {400, 401, 403, 422, 503}
    params = operation.get("parameters", [])
    if any(p.get("in") == "path" for p in params) or (method, path) == ("post", "/v1/runs"):
        statuses.add(404)
    if (method, path) in _GONE or (
        path.startswith("/v1/definitions/{key}/") and "/versions" not in path
    ):
        statuses.add(410)
    if method in {"post", "put", "patch"}:
        statuses.add(413)
    if method in {"post", "put", "delete"} and not path.endswith(_NO_CONFLICT):
        statuses.add(409)
    return statuses


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document, with problem responses added to every operation (cached)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorItem, Problem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        schemas[model.__name__] = schema
    problem_ref = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                if param.get("in") == "query":
                    param["allowEmptyValue"] = True  # `cursor=` means absent (app.guard)
            responses = operation.setdefault("responses", {})
            success = next((v for k, v in responses.items() if k.startswith("2")), None)
            for status, description in _MORE_SUCCESS.get((method, path), {}).items():
                responses.setdefault(str(status), {**(success or {}), "description": description})
            for status in sorted(_error_statuses(method, path, operation)):
                responses[str(status)] = {
                    "description": _DESCRIPTIONS[status],
                    "content": problem_ref,
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc

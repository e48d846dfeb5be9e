"""Domain errors: one base class carrying a stable code and an HTTP status.

``app.errors`` maps them once to RFC 9457 problem+json.
"""

from __future__ import annotations

from typing import Any


class TempoflowError(Exception):
    """Base of every error the API reports to clients."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        hint: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.hint = hint
        self.errors = errors or []
        self.extra = extra or {}


class NotFound(TempoflowError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(TempoflowError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Unprocessable(TempoflowError):
    status = 422
    code = "validation_failed"
    title = "Unprocessable content"


class Unauthorized(TempoflowError):
    status = 401
    code = "unauthenticated"
    title = "Unauthenticated"


class Forbidden(TempoflowError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class ServiceUnavailable(TempoflowError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"

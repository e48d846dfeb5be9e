"""Errors: what the API reports, and where each other kind of error lives.

The families, by where they end (the first three share the root
:class:`TempoflowBaseError`):

- **API errors** (this module): :class:`TempoflowError` and its subclasses carry a
  stable ``code`` and an HTTP status; ``app.errors`` maps them once to RFC 9457
  problem+json, each failing field an :class:`ErrorItem` (every 422 has that shape).
- **Run-time failures**: a step fails with a ``temporal_workflows.failures.StepFailure``
  whose ``type`` is one of :class:`tempoflow.error_types.ErrorType` (or an action's own
  type); the run's error and ``tryCatch`` see that type. Between activities and the
  workflow they travel as Temporal ``ApplicationError`` with the same ``type`` and typed
  details (``temporal_workflows.models.ActionFailure``, ``BookkeepingInterrupted``).
- **Action failures**: an action handler raises ``activities.registry.ActionError(type,
  …)``; the activity turns it into such an ``ApplicationError``.
- **Expression errors**: ``expression.ExpressionError`` (``code``, ``message``,
  ``position``) at publish time becomes an :class:`ErrorItem` in a 422
  (``Issue.from_expression_error``), at run time a step's ``ExpressionError``.
- **Invalid values** (``ValueError`` subclasses raised by pure helpers and turned into
  an :class:`ErrorItem` by their caller): ``tempoflow.correlation.CorrelationError``,
  ``tempoflow.jsonschema_safe.UnusableSchema``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorItem(BaseModel):
    """One failing field or element of a request, in every 422 (and 413) ``errors`` list.

    Attributes:
        path: where: a JSON pointer into the request body (``/steps/0/action``), or
            ``query:/name``, ``path:/name`` for parameters.
        code: a stable machine-readable code (``schema.missing``, ``input.required``…).
        message: what is wrong, for a person.
        hint: how to fix it, when there is more to say than the problem's ``hint``.
        position: a character offset inside an expression at ``path``.
        severity: definition issues only: ``error`` blocks publishing, a ``warning``
            (listed under ``warnings``) does not.
    """

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="JSON pointer (body), or 'query:/name', 'path:/name'")
    code: str
    message: str
    hint: str | None = None
    position: int | None = None
    severity: Literal["error", "warning"] | None = None


def error_items(items: Sequence[ErrorItem | Mapping[str, Any]] | None) -> list[ErrorItem]:
    """``items`` as :class:`ErrorItem` (a mapping must have exactly that shape)."""
    return [
        item if isinstance(item, ErrorItem) else ErrorItem.model_validate(item)
        for item in items or []
    ]


class TempoflowBaseError(Exception):
    """Root of Tempoflow's own exceptions: :class:`TempoflowError` (the API's),
    ``temporal_workflows.failures.StepFailure`` (a failed step) and
    ``activities.registry.ActionError`` (an action's typed failure)."""


class TempoflowError(TempoflowBaseError):
    """Base of every error the API reports to clients.

    Attributes:
        status: the HTTP status (a class default, or per instance).
        code: the stable problem code (``urn:tempoflow:problem:<code>``).
        title: the status's short title.
        detail: what went wrong, for a person.
        hint: how to fix it.
        errors: every failing field or element (:class:`ErrorItem`).
        extra: further members of the problem body (never over the standard ones).
    """

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
        errors: Sequence[ErrorItem | Mapping[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.hint = hint
        self.errors = error_items(errors)
        self.extra = extra or {}


class NotFound(TempoflowError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(TempoflowError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Gone(TempoflowError):
    status = 410
    code = "gone"
    title = "Gone"


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

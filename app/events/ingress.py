"""Event ingress: validate events against their types, derive correlation keys, store
them durably (deduplicated by id) through the data layer."""

from __future__ import annotations

import functools
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.events.offload import off_loop
from app.schemas import EventCreate
from expression import EvalContext, ExpressionError, evaluate
from projections import event_types, events
from projections.events import Receipt
from tempoflow import jsonpointer
from tempoflow.correlation import CorrelationError, normalize_key
from tempoflow.definition.validation import instance_errors
from tempoflow.errors import ErrorItem, TempoflowError, Unprocessable
from tempoflow.jsonschema_safe import safe_validator
from tempoflow.jsonsize import json_size
from tempoflow.settings import Settings

EVENT_ROOTS = frozenset({"id", "name", "payload", "occurredAt"})
"""What a type's correlation expression sees: the event."""


class DerivedKeyInvalid(ValueError):
    """The type's correlation found a value that cannot be a key (e.g. a boolean)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def derive_key(
    correlation: dict[str, Any] | None, event: dict[str, Any], settings: Settings
) -> str | None:
    """The type's correlation key of ``event``; ``None`` when nothing resolves (an
    expression error or no value: the event is uncorrelated).

    Raises:
        DerivedKeyInvalid: the value found is not a string or a number (a boolean must
            not silently become the key ``"1"``); ``path`` is where it came from.
    """
    if not correlation:
        return None
    if correlation.get("expression"):
        try:
            value = evaluate(
                correlation["expression"], event, EvalContext.wall_clock(settings.expression_limits)
            )
        except ExpressionError:
            return None
        try:
            return normalize_key(value)
        except CorrelationError as err:
            raise DerivedKeyInvalid("/correlationKey", f"the type's correlation: {err}") from None
    for pointer in correlation.get("paths") or []:
        try:
            key = normalize_key(jsonpointer.resolve(event, pointer))
        except CorrelationError as err:
            raise DerivedKeyInvalid(pointer, f"correlation path {pointer}: {err}") from None
        if key is not None:
            return key
    return None


PAYLOAD_KEYS = ("correlationKey", "workflowCorrelationKey")
"""Payload members that count as an explicit key when the event has no top-level one,
in this order (parity with the system Tempoflow replaces)."""


def choose_key(
    explicit: Any,
    correlation: dict[str, Any] | None,
    event: dict[str, Any],
    settings: Settings,
) -> tuple[str | None, str | None]:
    """The event's correlation key and where it came from (``key_source``), by precedence:
    top-level ``correlationKey`` > ``payload.correlationKey`` >
    ``payload.workflowCorrelationKey`` (all three "explicit") > the event type's
    correlation ("derived") > the tenant default ``TEMPOFLOW_DEFAULT_CORRELATION``
    ("default", only for types without a correlation of their own) > uncorrelated.

    Raises:
        DerivedKeyInvalid: an explicit key (top-level or in the payload) or a derived value
            is not a string or a number; ``path`` says which.
    """
    if explicit is not None:
        try:
            return normalize_key(explicit), "explicit"
        except CorrelationError as err:
            raise DerivedKeyInvalid("/correlationKey", str(err)) from None
    payload = event.get("payload")
    if isinstance(payload, dict):
        for name in PAYLOAD_KEYS:
            if payload.get(name) is None:
                continue
            try:
                return normalize_key(payload[name]), "explicit"
            except CorrelationError as err:
                raise DerivedKeyInvalid(f"/payload/{name}", str(err)) from None
    if correlation:
        key = derive_key(correlation, event, settings)
        return key, ("derived" if key is not None else None)
    if settings.default_correlation:
        key = derive_key({"expression": settings.default_correlation}, event, settings)
        return key, ("default" if key is not None else None)
    return None, None


@dataclass(frozen=True)
class TypeInfo:
    """What ingress needs of an event type (cached per API process)."""

    correlation: dict[str, Any] | None
    validator: Any


async def load_types(
    session: AsyncSession, tenant: str, names: set[str], cache: MutableMapping[Any, TypeInfo]
) -> dict[str, TypeInfo]:
    """The tenant's types among ``names``; unknown names are absent (and not cached)."""
    found: dict[str, TypeInfo] = {}
    for name in names:
        info = cache.get((tenant, name))
        if info is not None:
            found[name] = info
    missing = names - found.keys()
    if missing:
        for row in await event_types.find_event_types(session, tenant, missing):
            schema = row.payload_schema
            info = TypeInfo(
                row.correlation,
                safe_validator(schema) if schema is not None else None,
            )
            found[row.name] = info
            if getattr(cache, "maxsize", 1):
                cache[(tenant, row.name)] = info
    return found


@dataclass
class Prepared:
    """A validated event ready for the inbox."""

    row: dict[str, Any]


async def prepare(
    session: AsyncSession,
    tenant: str,
    items: list[EventCreate],
    settings: Settings,
    base: str,
    cache: MutableMapping[Any, TypeInfo],
) -> list[Prepared]:
    """Validate every event (type known, size, schema, key); raise one error listing all.

    Schemas and correlation expressions run in a worker thread (within the expression
    budgets), never on the event loop: an expensive batch must not stall other requests.
    """
    types = await load_types(session, tenant, {i.name for i in items}, cache)
    work = functools.partial(_prepare, tenant, items, types, settings, base)
    if len(items) == 1 and all(_cheap(t) for t in types.values()):
        # No schema, no correlation expression: a few dictionary lookups, cheaper here
        # than the hop to a worker thread and back.
        return work()
    return await off_loop(work)


def _cheap(kind: TypeInfo) -> bool:
    return kind.validator is None and not (kind.correlation or {}).get("expression")


def _prepare(
    tenant: str,
    items: list[EventCreate],
    types: dict[str, TypeInfo],
    settings: Settings,
    base: str,
) -> list[Prepared]:
    errors: list[ErrorItem | dict[str, Any]] = []
    prepared: list[Prepared] = []
    for index, item in enumerate(items):
        at = f"{base}/{index}" if base else ""
        size = json_size(item.payload)
        if size > settings.max_event_bytes:
            raise TempoflowError(
                f"event {index} has a {size}-byte payload; the limit is {settings.max_event_bytes}",
                code="event_too_large",
                status=413,
                errors=[
                    {"path": f"{at}/payload", "code": "event_too_large", "message": "too large"}
                ],
                hint="send a reference (URL, id) instead of the data",
            )
        kind = types.get(item.name)
        if kind is None:
            errors.append(
                {
                    "path": f"{at}/name",
                    "code": "event_type_unknown",
                    "message": f"event type {item.name!r} is not registered",
                }
            )
            continue
        if kind.validator is not None:
            errors.extend(instance_errors(kind.validator, item.payload, f"{at}/payload"))
        event_id = item.id or str(uuid.uuid4())
        occurred = item.occurred_at.isoformat() if item.occurred_at else None
        view = {
            "id": event_id,
            "name": item.name,
            "payload": item.payload,
            "occurredAt": occurred,
        }
        try:
            key, source = choose_key(item.correlation_key, kind.correlation, view, settings)
        except DerivedKeyInvalid as err:
            errors.append(
                {
                    "path": f"{at}{err.path}",
                    "code": "correlation_key_invalid",
                    "message": str(err),
                }
            )
            continue
        prepared.append(
            Prepared(
                {
                    "tenant": tenant,
                    "event_id": event_id,
                    "name": item.name,
                    "payload": item.payload,
                    "correlation_key": key,
                    "key_source": source,
                    "occurred_at": item.occurred_at,
                }
            )
        )
    if errors:
        raise Unprocessable(
            f"{len(errors)} problem(s) with the event(s); none was accepted",
            code="event_invalid",
            errors=errors,
            hint="PUT /v1/event-types/{name} registers a type; GET shows its schema",
        )
    return prepared


async def store(
    session: AsyncSession, tenant: str, prepared: list[Prepared]
) -> list[tuple[Receipt, bool]]:
    """Insert new events, keep existing ids; ``(receipt, duplicate)`` in request order.
    The caller commits before it answers (durable before 202)."""
    return await events.store(session, tenant, [p.row for p in prepared])

"""Event types and the inbox: validation, correlation, durable deduplicated ingestion."""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
import uuid
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import anyio.to_thread
from sqlalchemy import Table, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.schemas import EventCreate
from expression import EvalContext, ExpressionError, evaluate
from projections.models import Event, EventDeliveryRow, EventType
from tempoflow.correlation import CorrelationError, lock_key, normalize_key
from tempoflow.definition.validation import instance_errors
from tempoflow.errors import ErrorItem, TempoflowError, Unprocessable
from tempoflow.jsonschema_safe import safe_validator
from tempoflow.settings import Settings

T = TypeVar("T")

EVENT_ROOTS = frozenset({"id", "name", "payload", "occurredAt"})
"""What a type's correlation expression sees: the event."""


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer, or ``None`` when it is absent."""
    node = document
    for raw in pointer.lstrip("/").split("/") if pointer != "/" else [""]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
        if node is None:
            return None
    return node


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
            key = normalize_key(resolve_pointer(event, pointer))
        except CorrelationError as err:
            raise DerivedKeyInvalid(pointer, f"correlation path {pointer}: {err}") from None
        if key is not None:
            return key
    return None


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
        stmt = select(EventType).where(EventType.tenant == tenant, EventType.name.in_(missing))
        for row in (await session.execute(stmt)).scalars():
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


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


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
    return await off_loop(functools.partial(_prepare, tenant, items, types, settings, base))


_CPU = threading.BoundedSemaphore(4)
"""Threads doing CPU-bound event work (schemas, correlation, trigger filters) at once in
this process: a flood cannot take every thread, nor starve the event loop."""


async def off_loop(work: Callable[[], T]) -> T:
    """Run CPU-bound ``work`` in a worker thread (the event loop stays responsive)."""

    def guarded() -> T:
        with _CPU:
            return work()

    return await anyio.to_thread.run_sync(guarded)


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
        size = _size(item.payload)
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
        source: str | None = None
        if item.correlation_key is not None:
            try:
                key = normalize_key(item.correlation_key)
            except CorrelationError as err:
                errors.append(
                    {
                        "path": f"{at}/correlationKey",
                        "code": "correlation_key_invalid",
                        "message": str(err),
                    }
                )
                continue
            source = "explicit"
        else:
            view = {
                "id": event_id,
                "name": item.name,
                "payload": item.payload,
                "occurredAt": occurred,
            }
            try:
                key = derive_key(kind.correlation, view, settings)
            except DerivedKeyInvalid as err:
                errors.append(
                    {
                        "path": f"{at}{err.path}",
                        "code": "correlation_key_invalid",
                        "message": str(err),
                    }
                )
                continue
            source = "derived" if key is not None else None
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


class Receipt(Protocol):
    """What an ingress answer needs of a stored event."""

    event_id: str
    name: str
    correlation_key: str | None
    status: str
    received_at: dt.datetime


_ID_LOCKS = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ordered"
)

_RECEIPT = [Event.event_id, Event.name, Event.correlation_key, Event.status, Event.received_at]


async def store(
    session: AsyncSession, tenant: str, events: list[Prepared]
) -> list[tuple[Receipt, bool]]:
    """Insert new events, keep existing ids; returns ``(receipt, duplicate)`` in request
    order. Core statements returning only the receipt columns: this is the ingress hot
    path, and ORM entities cost more than the insert."""
    rows = [e.row for e in events]
    if len(rows) > 1:
        # Inserted in the order sent (the inbox order runs see). Two batches sharing ids
        # first take the ids' locks in one global order, so they cannot deadlock on each
        # other's rows; the later one reports the shared ids as duplicates.
        await session.execute(
            _ID_LOCKS, {"keys": sorted({lock_key(tenant, "\x00id", r["event_id"]) for r in rows})}
        )
    stmt = (
        insert(cast(Table, Event.__table__))
        .values(rows)
        .on_conflict_do_nothing()
        .returning(*_RECEIPT)
    )
    stored: dict[str, Receipt] = {
        r.event_id: cast(Receipt, r) for r in (await session.execute(stmt)).all()
    }
    inserted = set(stored)
    ids = [r["event_id"] for r in rows]
    repeated = set(ids) - inserted
    if repeated:  # the first receipts of ids seen before
        stmt2 = select(*_RECEIPT).where(Event.tenant == tenant, Event.event_id.in_(repeated))
        stored.update((r.event_id, cast(Receipt, r)) for r in (await session.execute(stmt2)).all())
    out: list[tuple[Receipt, bool]] = []
    seen: set[str] = set()
    for event_id in ids:
        out.append((stored[event_id], event_id not in inserted or event_id in seen))
        seen.add(event_id)
    return out


def public_status(event: Receipt | Event) -> str:
    """``PENDING`` until routed; then ``ROUTED``, or ``UNCORRELATED`` for an event without
    a key (rows routed before that status existed say ``ROUTED``)."""
    if event.status != "PENDING" and event.correlation_key is None:
        return "UNCORRELATED"
    return event.status


async def get_event(session: AsyncSession, tenant: str, event_id: str) -> Event | None:
    return await session.get(Event, (tenant, event_id))


async def deliveries(
    session: AsyncSession, tenant: str, event_ids: list[str]
) -> dict[str, list[EventDeliveryRow]]:
    found: dict[str, list[EventDeliveryRow]] = {i: [] for i in event_ids}
    stmt = (
        select(EventDeliveryRow)
        .where(EventDeliveryRow.tenant == tenant, EventDeliveryRow.event_id.in_(event_ids))
        .order_by(EventDeliveryRow.updated_at, EventDeliveryRow.run_id)
    )
    for row in (await session.execute(stmt)).scalars():
        found[row.event_id].append(row)
    return found


async def list_events(
    session: AsyncSession,
    tenant: str,
    *,
    limit: int,
    before: int | None,
    name: str | None,
    correlation_key: str | None,
    status: str | None,
) -> list[Event]:
    """Newest first (keyset on the inbox sequence)."""
    stmt = select(Event).where(Event.tenant == tenant)
    if before is not None:
        stmt = stmt.where(Event.seq < before)
    if name is not None:
        stmt = stmt.where(Event.name == name)
    if correlation_key is not None:
        stmt = stmt.where(Event.correlation_key == correlation_key)
    if status == "PENDING":
        stmt = stmt.where(Event.status == "PENDING")
    elif status == "UNCORRELATED":  # routed (to triggers only): no key
        stmt = stmt.where(Event.correlation_key.is_(None), Event.status != "PENDING")
    elif status is not None:
        stmt = stmt.where(Event.status == status, Event.correlation_key.is_not(None))
    return list((await session.execute(stmt.order_by(Event.seq.desc()).limit(limit))).scalars())

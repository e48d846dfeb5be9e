"""Event types: payload schema, correlation derivation, buffer TTL."""

from __future__ import annotations

from typing import Annotated, Any

import jsonschema
from fastapi import APIRouter, Path, Request, Response

from app.deps import Publisher, Reader, SessionDep, SettingsDep
from app.events.ingress import EVENT_ROOTS
from app.schema_refs import pinned_schema
from app.schemas import (
    EVENT_NAME,
    MAX_BUFFER_TTL,
    EventTypePublic,
    EventTypesPublic,
    EventTypeWrite,
)
from expression import ExpressionError
from expression.analysis import analyze
from projections import event_types
from tempoflow import jsonpointer
from tempoflow.errors import NotFound, Unprocessable
from tempoflow.jsonschema_safe import unsafe_parts

router = APIRouter(prefix="/v1/event-types", tags=["events"])

NamePath = Annotated[str, Path(pattern=EVENT_NAME)]


def _check(body: EventTypeWrite) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    if body.payload_schema is not None:
        try:
            jsonschema.validators.validator_for(body.payload_schema).check_schema(
                body.payload_schema
            )
        except jsonschema.SchemaError as err:
            errors.append(
                {
                    "path": "/schema" + jsonpointer.join(err.absolute_path),
                    "code": "schema.invalid",
                    "message": err.message,
                }
            )
        else:
            errors += [
                {"path": "/schema" + at, "code": "schema.unsafe", "message": reason}
                for at, reason in unsafe_parts(body.payload_schema)
            ]
    corr = body.correlation
    if corr is not None:
        if (corr.expression is None) == (corr.paths is None):
            errors.append(
                {
                    "path": "/correlation",
                    "code": "correlation.one_of",
                    "message": "give exactly one of expression or paths",
                }
            )
        if corr.expression is not None:
            try:
                found = analyze(corr.expression, roots=EVENT_ROOTS)
                errors.extend(
                    {"path": "/correlation/expression", "code": f.code, "message": f.message}
                    for f in found.errors
                )
            except ExpressionError as err:
                errors.append(
                    {"path": "/correlation/expression", "code": err.code, "message": err.message}
                )
        for i, pointer in enumerate(corr.paths or []):
            if not pointer.startswith("/"):
                errors.append(
                    {
                        "path": f"/correlation/paths/{i}",
                        "code": "correlation.pointer",
                        "message": "a path is a JSON pointer into the event, e.g. /payload/id",
                    }
                )
    if body.buffer_ttl is not None and not (
        0 <= body.buffer_ttl.total_seconds() <= MAX_BUFFER_TTL.total_seconds()
    ):
        errors.append(
            {"path": "/bufferTtl", "code": "buffer_ttl.range", "message": "between PT0S and P7D"}
        )
    return errors


@router.put("/{name}", response_model=EventTypePublic)
async def put_event_type(
    name: NamePath,
    body: EventTypeWrite,
    request: Request,
    principal: Publisher,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> EventTypePublic:
    """Create or replace an event type (affects events received from now on)."""
    errors: list[Any] = list(_check(body))
    schema = body.payload_schema
    if schema is not None and not errors:
        # Named-schema references are pinned now: the type keeps the schemas it was
        # written with (named schemas are immutable, so this is what they resolve to).
        schema, ref_errors = await pinned_schema(session, principal.tenant, schema, "/schema")
        errors += ref_errors
    if errors:
        raise Unprocessable(
            f"the event type has {len(errors)} error(s)",
            code="event_type_invalid",
            errors=errors,
            hint='schema is a JSON Schema (named schemas as {"$ref": "schema:<ref>"}); '
            "correlation is {expression} or {paths}",
        )
    ttl = body.buffer_ttl if body.buffer_ttl is not None else settings.default_event_buffer_ttl
    values = {
        "description": body.description,
        "payload_schema": schema,
        "correlation": body.correlation.model_dump(exclude_none=True) if body.correlation else None,
        "buffer_ttl_seconds": int(ttl.total_seconds()),
    }
    row, created = await event_types.put_event_type(session, principal.tenant, name, values)
    await session.commit()
    request.app.state.event_types.pop((principal.tenant, name), None)
    response.status_code = 201 if created else 200
    return EventTypePublic.model_validate(row)


@router.get("", response_model=EventTypesPublic)
async def list_event_types(principal: Reader, session: SessionDep) -> EventTypesPublic:
    rows = await event_types.list_event_types(session, principal.tenant)
    return EventTypesPublic(items=[EventTypePublic.model_validate(r) for r in rows])


@router.get("/{name}", response_model=EventTypePublic)
async def get_event_type(name: NamePath, principal: Reader, session: SessionDep) -> EventTypePublic:
    row = await event_types.get_event_type(session, principal.tenant, name)
    if row is None:
        raise NotFound(f"event type {name!r} does not exist", code="event_type_not_found")
    return EventTypePublic.model_validate(row)


@router.delete("/{name}", status_code=204)
async def delete_event_type(
    name: NamePath, request: Request, principal: Publisher, session: SessionDep
) -> Response:
    """Delete the type; events already received stay in the inbox."""
    if not await event_types.delete_event_type(session, principal.tenant, name):
        raise NotFound(f"event type {name!r} does not exist", code="event_type_not_found")
    await session.commit()
    request.app.state.event_types.pop((principal.tenant, name), None)
    return Response(status_code=204)

"""Schemas for editors and definitions: the definition language's JSON Schema and the
tenant's named schemas (immutable, referred to as ``{"$ref": "schema:<ref>"}``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.deps import Publisher, Reader, SessionDep, SettingsDep
from app.pagination import keyed_page
from app.schema_refs import schema_errors
from app.schemas import (
    NamedSchemaPublic,
    NamedSchemasPublic,
    NamedSchemaSummary,
    NamedSchemaWrite,
)
from projections import audit
from projections import named_schemas as data
from tempoflow.definition import content_hash
from tempoflow.definition.schema_export import definition_schema_text
from tempoflow.errors import Conflict, ErrorItem, NotFound, Unprocessable
from tempoflow.jsonsize import json_size
from tempoflow.named_schemas import MAX_REF, PREFIX, is_ref

router = APIRouter(prefix="/v1/schemas", tags=["schemas"])

MAX_SCHEMA_BYTES = 256 * 1024
"""Largest named schema (its JSON)."""
RefPath = Annotated[str, Path(min_length=1, max_length=MAX_REF)]
REF_HINT = "a ref is dot-separated names, e.g. payload.Order.v1 (letters, digits, _ and -)"


@router.get(
    "/definition.json",
    response_class=Response,
    responses={200: {"content": {"application/schema+json": {}}}},
)
async def read_definition_schema(principal: Reader) -> Response:
    """The whole definition language as one JSON Schema (the same as the repository's
    ``schemas/definition.json``)."""
    return Response(definition_schema_text(), media_type="application/schema+json")


def _check_ref(ref: str) -> None:
    if not is_ref(ref):
        raise Unprocessable(
            f"{ref!r} is not a valid named schema ref",
            code="schema_ref_invalid",
            hint=REF_HINT + "; refs ending in .json are reserved",
        )


@router.put(
    "/{ref}",
    response_model=NamedSchemaPublic,
    responses={
        201: {"model": NamedSchemaPublic, "description": "Named schema created"},
        200: {"description": "The same content was stored already"},
    },
)
async def create_named_schema(
    ref: RefPath,
    body: NamedSchemaWrite,
    principal: Publisher,
    session: SessionDep,
    response: Response,
) -> NamedSchemaPublic:
    """Store a named schema. Named schemas are immutable: the same content again is a
    no-op (200), other content under an existing ref is 409 (write it under a new ref)."""
    _check_ref(ref)
    schema = body.schema_
    size = json_size(schema)
    if size > MAX_SCHEMA_BYTES:
        raise Unprocessable(
            f"the schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}",
            code="schema_too_large",
            errors=[ErrorItem(path="/schema", code="schema_too_large", message="too large")],
            hint="split it into named schemas that refer to each other",
        )
    existing = await data.get_named_schema(session, principal.tenant, ref)
    if existing is None:
        _, errors = await schema_errors(session, principal.tenant, schema, "/schema")
        if "$id" in schema and schema["$id"] != PREFIX + ref:
            # Pinning embeds it as the resource schema:<ref>; refs to another id would break.
            errors.append(
                ErrorItem(
                    path="/schema/$id",
                    code="schema.id_not_allowed",
                    message=f"a named schema's id is {PREFIX + ref!r}",
                    hint="drop $id (refer to parts of the schema with '#/…')",
                )
            )
        if errors:
            raise Unprocessable(
                f"the schema has {len(errors)} error(s)",
                code="schema_invalid",
                errors=errors,
                hint="schema must be a valid JSON Schema; each error's path is a JSON pointer",
            )
        existing, created = await data.create_named_schema(
            session, principal.tenant, ref, schema, principal.key_id
        )
        if created:
            await audit.record(
                session,
                tenant=principal.tenant,
                actor=principal.key_id,
                action="schema.create",
                target=ref,
                details={"contentHash": existing.content_hash},
            )
        await session.commit()
        response.status_code = 201 if created else 200
    if existing.content_hash != content_hash(schema):
        raise Conflict(
            f"named schema {ref!r} already exists with other content",
            code="schema_ref_conflict",
            hint="named schemas are immutable (published versions pin them): write the "
            "change under a new ref, e.g. ending in .v2",
            extra={"contentHash": existing.content_hash},
        )
    return NamedSchemaPublic.model_validate(existing)


@router.get("", response_model=NamedSchemasPublic)
async def read_named_schemas(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: str | None = None,
) -> NamedSchemasPublic:
    rows, next_cursor = await keyed_page(
        lambda n, after: data.list_named_schemas(session, principal.tenant, limit=n, after=after),
        lambda row: row.ref,
        limit=limit,
        cursor=cursor,
        default_size=settings.default_page_size,
        max_size=settings.max_page_size,
    )
    return NamedSchemasPublic(
        items=[NamedSchemaSummary.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get("/{ref}", response_model=NamedSchemaPublic)
async def read_named_schema(
    ref: RefPath, principal: Reader, session: SessionDep
) -> NamedSchemaPublic:
    row = await data.get_named_schema(session, principal.tenant, ref)
    if row is None:
        raise NotFound(
            f"named schema {ref!r} does not exist",
            code="schema_not_found",
            hint="PUT /v1/schemas/{ref} creates it; GET /v1/schemas lists them",
        )
    return NamedSchemaPublic.model_validate(row)

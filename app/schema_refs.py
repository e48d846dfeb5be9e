"""Named-schema references where schemas are written: pinned from the tenant's registry
(:mod:`tempoflow.named_schemas`), unknown ones reported with their paths."""

from __future__ import annotations

from typing import Any

import jsonschema
from sqlalchemy.ext.asyncio import AsyncSession

from projections import named_schemas as data
from tempoflow import jsonpointer
from tempoflow.definition.named_refs import definition_refs, pin_definition
from tempoflow.definition.validation import schema_ref_issues
from tempoflow.errors import ErrorItem
from tempoflow.jsonschema_safe import unsafe_parts
from tempoflow.named_schemas import named_refs, pin


async def schema_errors(
    session: AsyncSession, tenant: str, schema: dict[str, Any], prefix: str
) -> tuple[dict[str, Any], list[ErrorItem]]:
    """``schema`` with its named-schema references pinned, and every problem of it: the
    meta-schema check, refs that leave the schema or patterns RE2 cannot run, and
    references to named schemas that do not exist (paths under ``prefix``)."""
    errors: list[ErrorItem] = []
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as err:
        errors.append(
            ErrorItem(
                path=prefix + jsonpointer.join(err.absolute_path),
                code="schema.invalid",
                message=err.message,
            )
        )
    errors += [
        ErrorItem(path=prefix + at, code="schema.unsafe", message=reason)
        for at, reason in unsafe_parts(schema)
    ]
    pinned, ref_errors = await pinned_schema(session, tenant, schema, prefix)
    return pinned, errors + ref_errors


async def pinned_schema(
    session: AsyncSession, tenant: str, schema: dict[str, Any], prefix: str
) -> tuple[dict[str, Any], list[ErrorItem]]:
    """``schema`` with the named schemas it refers to pinned, and the references to
    named schemas that do not exist (paths under ``prefix``)."""
    refs = {ref for _, ref in named_refs(schema)}
    if not refs:
        return schema, []
    pinned = pin(schema, await data.resolve(session, tenant, refs))
    return pinned, list(schema_ref_issues(pinned, prefix))


async def pinned_definition(session: AsyncSession, tenant: str, body: Any) -> Any:
    """``body`` with the named schemas its schemas refer to pinned (what a published
    version stores); references to unknown schemas stay, and validation reports them."""
    refs = {ref for _, ref in definition_refs(body)}
    if not refs:
        return body
    return pin_definition(body, await data.resolve(session, tenant, refs))

"""The checks of an import that are not conflicts: published versions valid, sizes,
dependencies present, secrets the target lacks (warnings)."""

from __future__ import annotations

from typing import Any

import jsonschema
from sqlalchemy.ext.asyncio import AsyncSession

from app.bundles.model import ImportContext, Plan
from projections import bundles as data
from projections import named_schemas as schema_data
from projections import secrets as secret_store
from tempoflow import jsonpointer
from tempoflow.bundle import Bundle, references
from tempoflow.definition import content_hash, validate_definition
from tempoflow.definition.validation import secret_references, unknown_secret_issues
from tempoflow.errors import ErrorItem
from tempoflow.jsonschema_safe import unsafe_parts
from tempoflow.jsonsize import json_size
from tempoflow.named_schemas import PREFIX, is_ref, named_refs


def version_key(body: Any, action_defaults: Any) -> tuple[str, str]:
    return content_hash(body), content_hash(action_defaults or {})


def check_definitions(bundle: Bundle, ctx: ImportContext, plan: Plan) -> None:
    names = ctx.registry.names()
    schemas = ctx.registry.input_schemas()
    for i, workflow in enumerate(bundle.workflows):
        bodies = [(f"/workflows/{i}/draft", workflow.draft, False)] + [
            (f"/workflows/{i}/versions/{j}/definition", v.definition, True)
            for j, v in enumerate(workflow.versions)
        ]
        for at, body, published in bodies:
            size = json_size(body)
            if size > ctx.max_definition_bytes:
                plan.errors.append(
                    ErrorItem(
                        path=at,
                        code="definition_too_large",
                        message=f"{size} bytes; the limit is {ctx.max_definition_bytes}",
                    )
                )
                continue
            if not published:
                continue  # drafts may be invalid, as PUT /v1/definitions/{key} allows
            for issue in validate_definition(body, names, schemas):
                if issue.severity == "error":
                    plan.errors.append(issue.model_copy(update={"path": at + issue.path}))


def _locations(bundle: Bundle) -> dict[str, dict[str, tuple[str, bool]]]:
    """Per dependency kind, each name with the pointer of its first use and whether a
    published version (not only a draft) uses it."""
    found: dict[str, dict[str, tuple[str, bool]]] = {"action": {}, "event": {}, "definition": {}}

    def note(kind: str, name: Any, at: str, published: bool) -> None:
        if not isinstance(name, str):
            return
        seen = found[kind].get(name)
        if seen is None or (published and not seen[1]):
            found[kind][name] = (at, published)

    for i, workflow in enumerate(bundle.workflows):
        bodies = [
            (f"/workflows/{i}/versions/{j}/definition", v.definition, True)
            for j, v in enumerate(workflow.versions)
        ]
        bodies.append((f"/workflows/{i}/draft", workflow.draft, False))
        for at, body, published in bodies:
            for kind, name, path in references(body):
                note(kind, name, at + path, published)
    return found


async def secret_warnings(
    session: AsyncSession, bundle: Bundle, ctx: ImportContext, plan: Plan
) -> None:
    """Secrets the latest versions refer to that the tenant lacks (values never travel in
    a bundle: create them in the target first). Warnings, as at publish."""
    latest = [
        (f"/workflows/{i}/versions/{len(w.versions) - 1}/definition", w.versions[-1].definition)
        for i, w in enumerate(bundle.workflows)
        if w.versions
    ]
    refs = {at: secret_references(body) for at, body in latest}
    names = {name for found in refs.values() for _, name in found}
    existing = await secret_store.existing_names(session, ctx.tenant, names)
    for at, found in refs.items():
        plan.summary.warnings += [
            w.model_copy(update={"path": at + w.path})
            for w in unknown_secret_issues(found, existing)
        ]


async def check_dependencies(
    session: AsyncSession, bundle: Bundle, ctx: ImportContext, plan: Plan
) -> None:
    found = _locations(bundle)
    in_bundle_types = {t.name for t in bundle.eventTypes}
    tenant_types = {t.name for t in await data.event_types(session, ctx.tenant, found["event"])}
    in_bundle_keys = {w.key for w in bundle.workflows}
    tenant_keys = await data.existing_keys(session, ctx.tenant, found["definition"])
    checks = [
        (
            "action",
            ctx.available_actions,
            "dependency.action_unavailable",
            "no running worker of this task queue has action {!r}",
            "start a worker that loads it (GET /v1/actions shows each action's workers)",
        ),
        (
            "event",
            in_bundle_types | tenant_types,
            "dependency.event_type_missing",
            "event type {!r} is neither in the tenant nor in the bundle",
            "PUT /v1/event-types/{name} first, or export the bundle with it",
        ),
        (
            "definition",
            in_bundle_keys | tenant_keys,
            "dependency.definition_missing",
            "child definition {!r} is neither in the tenant nor in the bundle",
            "import it first, or export the bundle with it (key=…)",
        ),
    ]
    for kind, have, code, message, hint in checks:
        for name, (at, published) in sorted(found[kind].items()):
            if name in have:
                continue
            item = ErrorItem(path=at, code=code, message=message.format(name), hint=hint)
            if published:
                plan.errors.append(item)
            else:  # only a draft uses it: it may exist by the time the draft is published
                plan.summary.warnings.append(item.model_copy(update={"severity": "warning"}))


async def check_schemas(
    session: AsyncSession, bundle: Bundle, ctx: ImportContext, plan: Plan
) -> None:
    """What ``PUT /v1/schemas/{ref}`` would refuse in the bundle's named schemas; a
    reference to a named schema neither in the tenant nor in the bundle is an error here
    (the schema could not be written)."""
    wanted = {s.ref for s in bundle.schemas}
    referenced = {ref for s in bundle.schemas for _, ref in named_refs(s.schema_)}
    have = set(await schema_data.resolve(session, ctx.tenant, referenced - wanted)) | wanted
    for index, item in enumerate(bundle.schemas):
        at = f"/schemas/{index}"
        schema = item.schema_
        found: list[ErrorItem] = []
        if not is_ref(item.ref):
            found.append(
                ErrorItem(
                    path=f"{at}/ref",
                    code="schema_ref_invalid",
                    message=f"{item.ref!r} is not a valid named schema ref",
                )
            )
        size = json_size(schema)
        if size > ctx.max_schema_bytes:
            found.append(
                ErrorItem(
                    path=f"{at}/schema",
                    code="schema_too_large",
                    message=f"{size} bytes; the limit is {ctx.max_schema_bytes}",
                )
            )
            plan.errors += found
            continue
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as err:
            found.append(
                ErrorItem(
                    path=f"{at}/schema" + jsonpointer.join(err.absolute_path),
                    code="schema.invalid",
                    message=err.message,
                )
            )
        found += [
            ErrorItem(path=f"{at}/schema{where}", code="schema.unsafe", message=reason)
            for where, reason in unsafe_parts(schema)
        ]
        if "$id" in schema and schema["$id"] != PREFIX + item.ref:
            found.append(
                ErrorItem(
                    path=f"{at}/schema/$id",
                    code="schema.id_not_allowed",
                    message=f"a named schema's id is {PREFIX + item.ref!r}",
                )
            )
        found += [
            ErrorItem(
                path=f"{at}/schema{where}",
                code="dependency.schema_missing",
                message=f"named schema {ref!r} is neither in the tenant nor in the bundle",
            )
            for where, ref in named_refs(schema)
            if ref not in have
        ]
        plan.errors += found

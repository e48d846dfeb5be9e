"""Inbound webhooks: ``POST /v1/hooks/{hookId}`` (no API key: the signature and the
unguessable id authenticate the caller) and the list of a definition's hooks.

A verified call becomes one inbox event (``$hook:<digest>``, id ``hook:<digest>:<delivery
id>``) whose payload is the mapped run input; the dispatcher starts the trigger's run from
it like any event trigger, so the 202 comes only after the call is durable, a repeated
delivery id is a duplicate (the first answer again), and the run id is known at once
(one run per definition and inbox event).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import TypeAdapter

from activities.tracing import current_context
from app import metrics
from app.definition_errors import definition_deleted, definition_not_found
from app.deps import Reader, SessionDep, SettingsDep
from app.events.offload import off_loop
from app.events.triggers import trigger_run_id
from app.routers.runs import _check_input
from app.schemas import DEFINITION_KEY, HookPublic, HookReceipt, HooksPublic
from expression import EvalContext, ExpressionError, evaluate
from projections import definitions, events
from projections import hooks as store
from projections import secrets as secret_store
from projections.models import HookRow
from projections.triggers import disabled as disabled_triggers
from tempoflow import hooks
from tempoflow.errors import Conflict, ErrorItem, NotFound, TempoflowError, Unauthorized
from tempoflow.jsonsize import json_size
from tempoflow.keyring import KeyringError
from tempoflow.settings import Settings

log = logging.getLogger("tempoflow.hooks")

router = APIRouter(prefix="/v1", tags=["hooks"])

_HOOK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DURATION = TypeAdapter(timedelta)


def _unknown() -> NotFound:
    return NotFound(
        "no such hook",
        code="hook_not_found",
        hint="GET /v1/definitions/{key}/hooks lists a definition's hook URLs",
    )


def _refused(reason: str) -> Unauthorized:
    return Unauthorized(
        f"the webhook signature was refused: {reason}",
        code="hook_signature_invalid",
        hint="sign the raw body with the trigger's secret (Standard Webhooks headers, or "
        "X-Hub-Signature-256 and X-GitHub-Delivery for signature 'github')",
    )


def _map_input(
    expression: str | None, body: Any, headers: dict[str, str], settings: Settings
) -> Any:
    """The run input: the trigger's ``input`` over ``body`` and ``headers`` (the body
    without one). CPU-bound: called off the event loop."""
    if expression is None:
        return body
    context = EvalContext.wall_clock(settings.expression_limits)
    return evaluate(expression, {"body": body, "headers": headers}, context)


async def _secrets(session: Any, settings: Settings, hook: HookRow) -> list[str]:
    names = [ref["$secret"] for ref in hook.config.get("secrets") or []]
    try:
        values = await secret_store.reveal(session, settings.keyring, hook.tenant, names)
    except KeyringError:
        log.exception("cannot open the secrets of hook %s", hook.trigger_name)
        values = {}
    missing = [n for n in names if n not in values]
    if missing:  # the operator's mistake: the caller only learns it was refused
        log.warning(
            "webhook trigger %r of %s: secret(s) %s missing",
            hook.trigger_name,
            hook.definition_key,
            missing,
        )
    return [values[n] for n in names if n in values]


@router.post(
    "/hooks/{hook_id}",
    response_model=HookReceipt,
    status_code=202,
    responses={
        200: {"model": HookReceipt, "description": "a repeated delivery id: the first answer"},
        401: {"description": "missing, wrong or stale signature"},
        404: {"description": "unknown hook"},
        409: {"description": "the definition is paused or the trigger disabled"},
        413: {"description": "body too large"},
    },
    openapi_extra={
        "requestBody": {
            "required": False,
            "description": "the sender's JSON body, verified byte for byte",
            "content": {"application/json": {"schema": {}}},
        }
    },
)
async def receive(
    hook_id: str, request: Request, session: SessionDep, settings: SettingsDep, response: Response
) -> HookReceipt:
    """Accept a signed webhook call: 202 with the run id once the call is durable; 200
    with the first answer for a delivery id seen before. Nothing is stored for a refused
    call."""
    found = await store.get_hook(session, hook_id) if _HOOK_ID.match(hook_id) else None
    if found is None:
        raise _unknown()
    hook, paused, disabled = found
    raw = await request.body()
    if len(raw) > settings.max_event_bytes:
        raise TempoflowError(
            f"the body is {len(raw)} bytes; a webhook call is limited to "
            f"{settings.max_event_bytes}",
            code="hook_body_too_large",
            status=413,
            hint="send a reference (URL, id) instead of the data, or raise "
            "TEMPOFLOW_MAX_EVENT_BYTES",
        )
    headers = {k.lower(): v for k, v in request.headers.items()}
    config = hook.config
    try:
        delivery = hooks.verify(
            config.get("signature", "standard"),
            raw,
            headers,
            await _secrets(session, settings, hook),
            _tolerance(config),
            datetime.now(UTC),
        )
    except hooks.SignatureInvalid as err:
        raise _refused(str(err)) from None
    if paused:
        raise Conflict(
            f"definition {hook.definition_key!r} is paused; the call was not accepted",
            code="definition_paused",
            hint="deliver it again after POST /v1/definitions/{key}/resume",
        )
    if disabled:
        raise Conflict(
            f"trigger {hook.trigger_name!r} of definition {hook.definition_key!r} is "
            "disabled; the call was not accepted",
            code="trigger_disabled",
            hint="deliver it again after POST /v1/definitions/{key}/triggers/{name}/enable",
        )
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        raise TempoflowError(
            "the body is not JSON",
            code="hook_body_invalid",
            hint="send Content-Type: application/json",
        ) from None
    try:
        data = await off_loop(
            functools.partial(_map_input, config.get("input"), body, headers, settings)
        )
    except ExpressionError as err:
        raise TempoflowError(
            f"the trigger's input mapping failed: {err}",
            code="hook_input_failed",
            status=422,
            errors=[ErrorItem(path="/input", code="hook_input_failed", message=str(err))],
            hint="the webhook trigger's input expression sees body and headers",
        ) from None
    if json_size(data) > settings.max_event_bytes:
        raise TempoflowError(
            f"the mapped input is over {settings.max_event_bytes} bytes",
            code="hook_body_too_large",
            status=413,
            hint="map only the fields the run needs",
        )
    version = await definitions.published_version(
        session, hook.tenant, hook.definition_key, hook.version
    )
    if version is not None:
        _check_input(data, version.body.get("inputSchema"), settings)
    event_id = hooks.hook_event_id(hook_id, delivery)
    row: dict[str, Any] = {
        "tenant": hook.tenant,
        "event_id": event_id,
        "name": hooks.hook_event_name(hook_id),
        "payload": data,
        "correlation_key": None,
        "key_source": None,
        "occurred_at": None,
    }
    trace_context = current_context(settings)
    if trace_context:
        row["trace_context"] = trace_context
    [(receipt, duplicate)] = await events.store(session, hook.tenant, [row])
    await session.commit()  # durable before the answer
    metrics.count_ingested(hook.tenant, [duplicate])
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None and not duplicate:
        dispatcher.wake()
    if duplicate:
        response.status_code = 200
    return HookReceipt(
        run_id=trigger_run_id(hook.tenant, hook.definition_key, event_id),
        delivery_id=delivery,
        event_id=event_id,
        received_at=receipt.received_at,
        duplicate=duplicate,
    )


def _tolerance(config: dict[str, Any]) -> timedelta:
    value = config.get("tolerance")  # as written (validated at publish): ISO 8601 or seconds
    return timedelta(minutes=5) if value is None else _DURATION.validate_python(value)


@router.get("/definitions/{key}/hooks", response_model=HooksPublic)
async def list_hooks(
    key: Annotated[str, Path(pattern=DEFINITION_KEY)],
    request: Request,
    principal: Reader,
    session: SessionDep,
) -> HooksPublic:
    """The hook URLs of the definition's webhook triggers (latest published version)."""
    found = await definitions.get_definition(session, principal.tenant, key, include_deleted=True)
    if found is None:
        raise definition_not_found(key)
    if found.deleted_at is not None:
        raise definition_deleted(key)
    rows = await store.list_hooks(session, principal.tenant, key)
    off = await disabled_triggers(session, principal.tenant, key)
    base = str(request.base_url).rstrip("/")
    return HooksPublic(
        items=[
            HookPublic(
                trigger=h.trigger_name,
                hook_id=h.hook_id,
                url=f"{base}/v1/hooks/{h.hook_id}",
                signature=h.config.get("signature", "standard"),
                version=h.version,
                created_at=h.created_at,
                enabled=h.trigger_name not in off,
            )
            for h in rows
        ]
    )

"""Delivery: signal an event to a waiting run, or start a trigger's run, in Temporal;
classify what went wrong as final (an outcome) or worth retrying (an error)."""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic_core import PydanticSerializationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.tracing import continued
from app.events.routing import Target, to_delivery
from app.events.triggers import trigger_key
from app.run_starter import start_run
from projections import definitions
from tempoflow.errors import Conflict, TempoflowError
from tempoflow.hooks import is_hook_event
from tempoflow.records import DeliveryStatus
from tempoflow.settings import Settings
from temporal_workflows.models import EVENT_SIGNAL

log = logging.getLogger("tempoflow.dispatcher")

SIGNAL_TIMEOUT = timedelta(seconds=10)
_PERMANENT = frozenset(
    {
        RPCStatusCode.INVALID_ARGUMENT,
        RPCStatusCode.PERMISSION_DENIED,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.UNIMPLEMENTED,
    }
)
"""Temporal answers that retrying the same call cannot change."""
_SIGNAL_CAP = "exceeded workflow execution limit for signal"
"""Temporal's per-execution signal cap (INVALID_ARGUMENT, yet not permanent for us)."""
_UNSENDABLE = (TypeError, ValueError, RecursionError, PydanticSerializationError)
"""Raised while encoding the signal or start (e.g. a payload nested too deep)."""
_TRANSIENT = (ConnectionError, TimeoutError, OSError, RuntimeError)
"""Temporal unreachable (the client raises ``RuntimeError`` when it cannot connect)."""
DATABASE_DOWN = (OperationalError, InterfaceError, OSError)
"""The database is unreachable: the whole round is retried (no event is to blame)."""


async def deliver(
    target: Target,
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    """Deliver ``target``, setting its outcome, or its error when a retry may help.
    With tracing, the signal or start continues the trace of the request that sent the
    event."""
    with continued(target.event.trace_context):
        await _deliver(target, client, sessions, settings)


async def _deliver(
    target: Target,
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    try:
        if target.row["kind"] == "trigger":
            await _start(target, client, sessions, settings)
        else:
            await client.get_workflow_handle(target.row["workflow_id"]).signal(
                EVENT_SIGNAL, to_delivery(target.event), rpc_timeout=SIGNAL_TIMEOUT
            )
            target.outcome = DeliveryStatus.SIGNALED
    except RPCError as err:
        message = f"{err.status.name if err.status else 'RPC'}: {err.message}"[:2000]
        if err.status == RPCStatusCode.NOT_FOUND and target.row["kind"] == "wait":
            target.outcome = DeliveryStatus.RUN_CLOSED
            target.reason = "the run had closed"
        elif _SIGNAL_CAP in (err.message or ""):
            # Not permanent: the run continues as new (a fresh execution has a fresh
            # budget) and takes the event then.
            target.error = f"{message} (retried after the run continues as new)"
        elif err.status in _PERMANENT:
            target.outcome = DeliveryStatus.FAILED  # retrying cannot help
            target.reason = message
        else:
            target.error = message
    except TempoflowError as err:  # e.g. the event is not valid run input
        if err.status >= 500:
            target.error = f"{err.code}: {err}"
        else:
            target.outcome = DeliveryStatus.FAILED
            target.reason = f"{err.code}: {err}"[:2000]
    except _UNSENDABLE as err:  # the event cannot be encoded: it never will be
        target.outcome = DeliveryStatus.FAILED
        target.reason = f"the event cannot be sent: {type(err).__name__}: {err}"[:2000]
    except (*_TRANSIENT, *DATABASE_DOWN) as err:  # unreachable: retry it later
        target.error = f"{type(err).__name__}: {err}"
    except Exception as err:  # unexpected: retried, but not forever
        log.exception("delivering event %s failed", target.event.event_id)
        text = f"{type(err).__name__}: {err}"[:2000]
        if target.attempt >= settings.dispatch_max_attempts:
            target.outcome = DeliveryStatus.FAILED
            target.reason = f"gave up after {target.attempt} attempts: {text}"
        else:
            target.error = text


async def _start(
    target: Target,
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    """Start the trigger's run of the definition's latest published version."""
    event, row = target.event, target.row
    async with sessions() as session:
        version = await definitions.published_version(session, event.tenant, row["definition_key"])
        if version is not None:
            session.expunge(version)
    if version is None:
        target.outcome = DeliveryStatus.FILTERED
        target.reason = "definition not published (or deleted)"
        return
    try:
        await start_run(
            client,
            task_queue=settings.task_queue,
            tenant=event.tenant,
            version=version,
            # A webhook call's payload is the run input its trigger mapped at the hook.
            data=event.payload if is_hook_event(event.name) else to_delivery(event).public(),
            idempotency_key=trigger_key(row["definition_key"], event.event_id),
            limits=settings.expression_limits,
            run_limits=settings.run_limits,
        )
    except Conflict:
        pass  # started before by an earlier version of the definition: still one run
    target.outcome = DeliveryStatus.STARTED

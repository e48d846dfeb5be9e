"""Schedule triggers as Temporal Schedules: one per trigger, kept in step with the latest
published version of its definition and with the definition's pause.

Temporal is the scheduler (catch-up, overlap, jitter, pause all live there); Tempoflow
only derives the ids, builds the schedule from the trigger and reads its state back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from app.run_starter import run_priority
from expression.limits import ExpressionLimits
from projections.models import DefinitionVersionRow
from tempoflow.definition.model import Trigger
from tempoflow.ids import parse_workflow_id, workflow_id
from tempoflow.limits import RunLimits
from temporal_workflows import search_attributes as sa
from temporal_workflows.models import WORKFLOW_NAME, RunInput

OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "bufferOne": ScheduleOverlapPolicy.BUFFER_ONE,
    "bufferAll": ScheduleOverlapPolicy.BUFFER_ALL,
    "allowAll": ScheduleOverlapPolicy.ALLOW_ALL,
    "cancelOther": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminateOther": ScheduleOverlapPolicy.TERMINATE_OTHER,
}
RECENT_STARTS = 10
"""How many recent starts ``GET /v1/definitions/{key}/schedules`` shows (Temporal keeps
the last ten)."""
NEXT_TIMES = 5


def schedule_id(tenant: str, key: str, trigger: str) -> str:
    """The Temporal Schedule of one schedule trigger."""
    return f"tempoflow/{tenant}/{key}/{trigger}"


def schedule_workflow_id(tenant: str, key: str, trigger: str) -> str:
    """The workflow id the schedule's action carries: ``<tenant>/s-<12 hex>``.

    Temporal appends ``-<scheduled time, RFC 3339>`` (21 characters) to it, so a scheduled
    run's id (the part after ``<tenant>/``) is ``s-<12 hex>-2026-11-23T02:00:00Z``: 35
    characters, within the 36 of a run id (a UUID's length). The digest names the
    (tenant, definition, trigger) triple without spelling long keys out.
    """
    digest = hashlib.sha256(f"{tenant}\x00{key}\x00{trigger}".encode()).hexdigest()[:12]
    return workflow_id(tenant, f"s-{digest}")


def schedule_triggers(body: dict[str, Any]) -> list[Trigger]:
    """The schedule triggers of a (valid) definition body."""
    triggers = [Trigger.model_validate(t) for t in body.get("triggers") or []]
    return [t for t in triggers if t.schedule is not None]


def build_schedule(
    version: DefinitionVersionRow,
    trigger: Trigger,
    *,
    task_queue: str,
    paused: bool,
    limits: ExpressionLimits | None = None,
    run_limits: RunLimits | None = None,
    search_attributes: bool = True,
    disabled: bool = False,
) -> Schedule:
    """The Temporal Schedule of ``trigger``: its action starts the interpreter exactly as
    ``POST /v1/runs`` does (``app.run_starter.start_run``), with the run id left to the
    workflow (its workflow id after ``<tenant>/``) and the trigger recorded on the run."""
    spec = trigger.schedule
    assert spec is not None and trigger.name is not None
    tenant, key = version.tenant, version.key
    action = ScheduleActionStartWorkflow(
        WORKFLOW_NAME,
        RunInput(
            run_id="",
            tenant=tenant,
            definition_key=key,
            definition_version=version.version,
            definition=version.body,
            action_defaults=version.action_defaults or {},
            input=trigger.input if trigger.input is not None else {},
            limits=limits or ExpressionLimits(),
            run_limits=run_limits or RunLimits(),
            trigger={"schedule": trigger.name},
        ),
        id=schedule_workflow_id(tenant, key, trigger.name),
        task_queue=task_queue,
        typed_search_attributes=sa.for_run(tenant, key, version.version)
        if search_attributes
        else TypedSearchAttributes.empty,
        memo={"trigger": {"schedule": trigger.name}},
        static_summary=f"{key} v{version.version} (schedule {trigger.name})",
        priority=run_priority(version.body),
    )
    return Schedule(
        action=action,
        spec=ScheduleSpec(
            cron_expressions=[spec.cron] if spec.cron else [],
            intervals=[ScheduleIntervalSpec(every=spec.interval)] if spec.interval else [],
            time_zone_name=spec.timezone,
            jitter=spec.jitter,
            start_at=spec.startAt,
            end_at=spec.endAt,
        ),
        policy=SchedulePolicy(overlap=OVERLAP[spec.overlap], catchup_window=spec.catchupWindow)
        if spec.catchupWindow is not None
        else SchedulePolicy(overlap=OVERLAP[spec.overlap]),
        state=ScheduleState(paused=paused or disabled, note=note(paused, disabled)),
    )


def note(paused: bool, disabled: bool = False) -> str:
    """The schedule's note: why Tempoflow paused it (the definition wins)."""
    if paused:
        return "definition paused"
    return "trigger disabled" if disabled else "managed by Tempoflow"


def _missing(err: RPCError) -> bool:
    return err.status == RPCStatusCode.NOT_FOUND


async def sync_schedules(
    client: Client,
    version: DefinitionVersionRow,
    *,
    paused: bool,
    previous: Iterable[str] = (),
    task_queue: str,
    limits: ExpressionLimits | None = None,
    run_limits: RunLimits | None = None,
    disabled: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Create or update one schedule per schedule trigger of ``version`` (paused with
    the definition, or when its trigger is ``disabled``); delete the schedules of
    ``previous`` trigger names the version no longer has. Idempotent (a repeated
    publish repeats it). Returns the trigger names by what happened."""
    off = set(disabled)
    done: dict[str, list[str]] = {"created": [], "updated": [], "deleted": []}
    wanted = schedule_triggers(version.body)
    for trigger in wanted:
        assert trigger.name is not None
        schedule = build_schedule(
            version,
            trigger,
            task_queue=task_queue,
            paused=paused,
            limits=limits,
            run_limits=run_limits,
            disabled=trigger.name in off,
        )
        sid = schedule_id(version.tenant, version.key, trigger.name)
        try:
            await client.create_schedule(sid, schedule)
            done["created"].append(trigger.name)
            continue
        except ScheduleAlreadyRunningError:
            pass

        def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=new)

        await client.get_schedule_handle(sid).update(replace)
        done["updated"].append(trigger.name)
    names = {t.name for t in wanted}
    done["deleted"] = await delete_schedules(
        client, version.tenant, version.key, set(previous) - names
    )
    return done


async def delete_schedules(
    client: Client, tenant: str, key: str, names: Iterable[str]
) -> list[str]:
    """Delete the named triggers' schedules (missing ones are skipped); returns the names
    of those that existed."""
    deleted: list[str] = []
    for name in sorted(set(names)):
        try:
            await client.get_schedule_handle(schedule_id(tenant, key, name)).delete()
        except RPCError as err:
            if not _missing(err):
                raise
            continue
        deleted.append(name)
    return deleted


async def pause_schedules(
    client: Client,
    tenant: str,
    key: str,
    names: Iterable[str],
    paused: bool,
    disabled: bool = False,
) -> None:
    """Pause or unpause the named schedules: paused while the definition is ``paused``
    or the trigger ``disabled``, running otherwise."""
    for name in names:
        handle = client.get_schedule_handle(schedule_id(tenant, key, name))
        try:
            if paused or disabled:
                await handle.pause(note=note(paused, disabled))
            else:
                await handle.unpause(note=note(False))
        except RPCError as err:
            if not _missing(err):
                raise


def run_id_of(wid: str) -> str:
    parsed = parse_workflow_id(wid)
    return parsed[1] if parsed else wid


async def describe_schedules(
    client: Client, tenant: str, key: str, triggers: list[Trigger]
) -> list[dict[str, Any]]:
    """Each schedule trigger with its Temporal state: paused, next times, recent starts."""
    found: list[dict[str, Any]] = []
    for trigger in triggers:
        assert trigger.name is not None and trigger.schedule is not None
        sid = schedule_id(tenant, key, trigger.name)
        item: dict[str, Any] = {
            "trigger": trigger.name,
            "scheduleId": sid,
            "schedule": trigger.schedule.model_dump(mode="json", exclude_none=True),
        }
        try:
            desc = await client.get_schedule_handle(sid).describe()
        except RPCError as err:
            if not _missing(err):
                raise
            found.append({**item, "exists": False})
            continue
        info = desc.info
        starts: list[dict[str, Any]] = []
        for result in list(info.recent_actions)[-RECENT_STARTS:]:
            action = result.action
            wid = (
                action.workflow_id
                if isinstance(action, ScheduleActionExecutionStartWorkflow)
                else ""
            )
            starts.append(
                {
                    "scheduledAt": _iso(result.scheduled_at),
                    "startedAt": _iso(result.started_at),
                    "runId": run_id_of(wid) if wid else None,
                }
            )
        found.append(
            {
                **item,
                "exists": True,
                "paused": desc.schedule.state.paused,
                "nextRunTimes": [_iso(t) for t in list(info.next_action_times)[:NEXT_TIMES]],
                "recentStarts": starts,
                "runningRunIds": [
                    run_id_of(a.workflow_id)
                    for a in info.running_actions
                    if isinstance(a, ScheduleActionExecutionStartWorkflow)
                ],
                "numStarts": info.num_actions,
                "numSkippedOverlap": info.num_actions_skipped_overlap,
                "numMissedCatchupWindow": info.num_actions_missed_catchup_window,
            }
        )
    return found


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")

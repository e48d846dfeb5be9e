"""Retention: delete closed runs' rows and settled inbox events in bounded batches.

A run is pruned with everything keyed by its id (steps, waits, human tasks, action
invocations and attempts, event deliveries, the notification delivery log) once it has
been closed longer than its retention: the definition's ``retention.closedRuns`` (latest
published version), else the tenant's default. Inbox events are pruned once settled
(never ``PENDING``, no delivery still ``PENDING``), older than the tenant's retention
and than their type's buffer TTL. Each batch is one transaction taking its rows with
``FOR UPDATE SKIP LOCKED``, so any number of pruners may run at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ARRAY, Float, String, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from projections.models import DefinitionRow, DefinitionVersionRow

RUN_TABLES = (
    "steps",
    "waits",
    "human_tasks",
    "action_attempts",
    "action_invocations",
    "run_logs",
    "run_feed",
    "notifications",
)
"""Tables whose rows belong to one run (``run_id``), deleted with it. Event deliveries
go too, except those of events still pending."""


@dataclass(frozen=True)
class Policy:
    default: timedelta
    tenants: dict[str, timedelta] = field(default_factory=dict)
    definitions: dict[tuple[str, str], timedelta] = field(default_factory=dict)

    def shortest(self) -> timedelta:
        return min([self.default, *self.tenants.values(), *self.definitions.values()])


async def definition_retentions(session: AsyncSession) -> dict[tuple[str, str], Any]:
    """``retention.closedRuns`` as written in each definition's latest published version."""
    stmt = (
        select(
            DefinitionRow.tenant,
            DefinitionRow.key,
            DefinitionVersionRow.body["retention"]["closedRuns"],
        )
        .join(
            DefinitionVersionRow,
            (DefinitionVersionRow.tenant == DefinitionRow.tenant)
            & (DefinitionVersionRow.key == DefinitionRow.key)
            & (DefinitionVersionRow.version == DefinitionRow.latest_version),
        )
        .where(DefinitionVersionRow.body.has_key("retention"))
    )
    return {(t, k): value for t, k, value in (await session.execute(stmt)).all()}


_ARRAYS = (
    bindparam("o_tenants", type_=ARRAY(String)),
    bindparam("o_keys", type_=ARRAY(String)),
    bindparam("o_secs", type_=ARRAY(Float)),
    bindparam("t_tenants", type_=ARRAY(String)),
    bindparam("t_secs", type_=ARRAY(Float)),
)

_DUE_RUNS = text(
    """
    SELECT r.run_id FROM runs r
    LEFT JOIN unnest(:o_tenants, :o_keys, :o_secs) AS o(tenant, key, secs)
      ON o.tenant = r.tenant AND o.key = r.definition_key
    LEFT JOIN unnest(:t_tenants, :t_secs) AS t(tenant, secs) ON t.tenant = r.tenant
    WHERE r.closed_at IS NOT NULL
      AND r.closed_at < now() - make_interval(secs => :shortest)
      AND r.closed_at < now() - make_interval(secs => COALESCE(o.secs, t.secs, :default))
    ORDER BY r.closed_at
    LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
    """
).bindparams(*_ARRAYS)

_DUE_EVENTS = text(
    """
    SELECT e.seq FROM events e
    LEFT JOIN event_types et ON et.tenant = e.tenant AND et.name = e.name
    LEFT JOIN unnest(:t_tenants, :t_secs) AS t(tenant, secs) ON t.tenant = e.tenant
    WHERE e.status <> 'PENDING'
      AND e.received_at < now() - make_interval(secs => :shortest)
      AND e.received_at < now() - make_interval(secs => COALESCE(t.secs, :default))
      AND e.received_at < now() - make_interval(secs => COALESCE(et.buffer_ttl_seconds, 0))
      AND NOT EXISTS (
        SELECT 1 FROM event_deliveries d
        WHERE d.tenant = e.tenant AND d.event_id = e.event_id AND d.status = 'PENDING'
      )
    ORDER BY e.received_at
    LIMIT :limit
    FOR UPDATE OF e SKIP LOCKED
    """
).bindparams(*_ARRAYS[3:])


def _params(policy: Policy, limit: int) -> dict[str, Any]:
    overrides = list(policy.definitions.items())
    tenants = list(policy.tenants.items())
    return {
        "o_tenants": [t for (t, _), _ in overrides],
        "o_keys": [k for (_, k), _ in overrides],
        "o_secs": [v.total_seconds() for _, v in overrides],
        "t_tenants": [t for t, _ in tenants],
        "t_secs": [v.total_seconds() for _, v in tenants],
        "default": policy.default.total_seconds(),
        "shortest": policy.shortest().total_seconds(),
        "limit": limit,
    }


async def prune_runs(session: AsyncSession, policy: Policy, limit: int) -> dict[str, int]:
    """Delete up to ``limit`` due runs and their rows; rows deleted per table."""
    ids = list((await session.execute(_DUE_RUNS, _params(policy, limit))).scalars())
    counts: dict[str, int] = {}
    if not ids:
        return counts
    ids_param = bindparam("ids", type_=ARRAY(String))
    for table in RUN_TABLES:
        stmt = text(f"DELETE FROM {table} WHERE run_id = ANY(:ids)").bindparams(ids_param)
        counts[table] = (await session.execute(stmt, {"ids": ids})).rowcount  # type: ignore[attr-defined]
    deliveries = text(
        """
        DELETE FROM event_deliveries d WHERE d.run_id = ANY(:ids) AND NOT EXISTS (
          SELECT 1 FROM events e
          WHERE e.tenant = d.tenant AND e.event_id = d.event_id AND e.status = 'PENDING')
        """
    ).bindparams(ids_param)
    counts["event_deliveries"] = (await session.execute(deliveries, {"ids": ids})).rowcount  # type: ignore[attr-defined]
    runs = text("DELETE FROM runs WHERE run_id = ANY(:ids)").bindparams(ids_param)
    counts["runs"] = (await session.execute(runs, {"ids": ids})).rowcount  # type: ignore[attr-defined]
    return counts


async def prune_events(session: AsyncSession, policy: Policy, limit: int) -> dict[str, int]:
    """Delete up to ``limit`` settled, expired inbox events and their deliveries."""
    params = _params(policy, limit)
    params["shortest"] = min([policy.default, *policy.tenants.values()]).total_seconds()
    seqs = list((await session.execute(_DUE_EVENTS, params)).scalars())
    if not seqs:
        return {}
    seqs_param = bindparam("seqs", type_=ARRAY(String))
    deliveries = text(
        """
        DELETE FROM event_deliveries d USING events e
        WHERE e.seq = ANY(CAST(:seqs AS bigint[]))
          AND d.tenant = e.tenant AND d.event_id = e.event_id
        """
    ).bindparams(seqs_param)
    events = text("DELETE FROM events WHERE seq = ANY(CAST(:seqs AS bigint[]))").bindparams(
        seqs_param
    )
    as_text = [str(s) for s in seqs]
    return {
        "event_deliveries": (await session.execute(deliveries, {"seqs": as_text})).rowcount,  # type: ignore[attr-defined]
        "events": (await session.execute(events, {"seqs": as_text})).rowcount,  # type: ignore[attr-defined]
    }

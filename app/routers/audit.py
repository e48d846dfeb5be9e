"""The audit log of the caller's tenant (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import Admin, SessionDep, SettingsDep
from app.pagination import decode_cursor, encode_cursor
from app.schemas import AuditEntryPublic, AuditPublic, AwareTimestamp
from projections import audit

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPublic)
async def read_audit(
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=1024)] = None,
    actor: Annotated[str | None, Query(max_length=36)] = None,
    since: AwareTimestamp | None = None,
    until: AwareTimestamp | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: str | None = None,
) -> AuditPublic:
    """Entries newest first, filtered by action (e.g. ``run.terminate``), target (a run
    id, definition key, key id or secret name), actor (key id) and time."""
    size = min(limit or settings.default_page_size, settings.max_page_size)
    before = decode_cursor(cursor, (int,))
    rows = await audit.list_entries(
        session,
        principal.tenant,
        limit=size + 1,
        before_id=before[0] if before else None,
        action=action,
        target=target,
        actor=actor,
        since=since,
        until=until,
    )
    next_cursor = encode_cursor([rows[size - 1].id]) if len(rows) > size else None
    return AuditPublic(
        items=[AuditEntryPublic.model_validate(r) for r in rows[:size]], next_cursor=next_cursor
    )

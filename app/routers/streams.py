"""Live streams (Server-Sent Events) of run activity, and run logs.

``sse-starlette`` does the SSE framing, the heartbeat comments and the cancellation of
a stream whose client went away; this module decides what to send (feed entries from
``projections/feed.py``, woken by the process's ``FeedHub``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.deps import Operator, SessionDep, SettingsDep, TemporalClientDep
from app.pagination import decode_cursor, encode_cursor
from app.run_starter import describe_run
from app.schemas import RunLogLinePublic, RunLogsPublic
from app.streams import FeedHub
from projections import feed, feed_read, runlogs, runs
from projections.db import is_transient
from tempoflow.errors import ErrorItem, NotFound, Unprocessable
from tempoflow.records import TERMINAL_RUN
from tempoflow.settings import Settings

router = APIRouter(tags=["streams"])
log = logging.getLogger("tempoflow.streams")

RunIdPath = Annotated[str, Path(min_length=1, max_length=36)]
PAGE = 500
"""Feed entries read per query."""
SETTLE_FIRST = 0.05
SETTLE_SECONDS = 10.0
"""After a wake-up, how long a stream keeps looking (after 50 ms, doubling up to 1 s) for
entries held back by an older transaction still in progress (whose end may notify no
one)."""
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events (see docs/api.md for event names and data)",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _after(last_event_id: str | None, after: int | None) -> int | None:
    if last_event_id is None:
        return after
    try:
        value = int(last_event_id.strip())
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise Unprocessable(
            "Last-Event-ID is not an event id of this stream",
            code="last_event_id_invalid",
            errors=[
                ErrorItem(
                    path="header:/Last-Event-ID",
                    code="last_event_id_invalid",
                    message="expected the id of an event received",
                )
            ],
            hint="send back the id: of the last event received, unchanged",
        )
    return value


async def _start(
    session: AsyncSession, tenant: str, after: int | None
) -> feed_read.Position | None:
    if after is None:
        return None
    return await feed_read.position_of(session, tenant, after) or await feed_read.position_before(
        session, tenant, after
    )


def _event(entry: feed_read.Entry) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(entry.data), event=entry.kind, id=str(entry.id))


async def _closed_run(
    sessions: async_sessionmaker[AsyncSession], tenant: str, run_id: str
) -> ServerSentEvent | None:
    """A final ``run.status`` event (without id) for a run closed without a feed entry
    (its projection closed from Temporal)."""
    try:
        async with sessions() as session:
            row = await runs.get_run(session, tenant, run_id)
    except Exception as err:
        if not is_transient(err):
            raise
        return None  # looked at again at the next poll
    if row is None or row.status not in TERMINAL_RUN:
        return None
    data = {
        "runId": run_id,
        "status": row.status,
        "definition": row.definition_key,
        "version": row.definition_version,
        "error": row.error,
        "closedAt": row.closed_at.isoformat() if row.closed_at else None,
    }
    return ServerSentEvent(data=json.dumps(data), event="run.status")


async def _follow(
    sessions: async_sessionmaker[AsyncSession],
    hub: FeedHub,
    settings: Settings,
    tenant: str,
    position: feed_read.Position,
    *,
    run_id: str | None = None,
    definition: str | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """Entries after ``position`` as they become final; a run's stream ends after the
    run's closing status. The subscription is dropped when the client goes away (the
    generator is cancelled) or the stream ends."""
    sub = hub.subscribe(tenant, run_id)
    loop = asyncio.get_running_loop()
    settle = 0.0  # until then, look again soon: entries of a commit that woke the stream
    # may be held back by an older transaction still in progress
    delay = SETTLE_FIRST
    try:
        while True:
            try:
                async with sessions() as session:
                    entries = await feed_read.read(
                        session, tenant, position, run_id=run_id, definition=definition, limit=PAGE
                    )
            except Exception as err:
                if not is_transient(err):
                    raise
                # The database is away: the stream stays open (heartbeats go on) and
                # picks up where it was once it is back.
                log.warning("live stream cannot read the feed: %r (retrying)", err)
                await sub.wait(settings.stream_poll_seconds)
                continue
            for entry in entries:
                position = (entry.txid, entry.id)
                yield _event(entry)
                if run_id is not None and entry.kind == "run.status":
                    if entry.data.get("status") in TERMINAL_RUN:
                        return
            if len(entries) == PAGE:
                continue
            settling = loop.time() < settle
            woken = await sub.wait(delay if settling else settings.stream_poll_seconds)
            if woken:
                # A commit woke us; an older transaction still in progress may hold its
                # entries back for a moment.
                settle, delay = loop.time() + SETTLE_SECONDS, SETTLE_FIRST
            elif settling:
                delay = min(delay * 2, 1.0)
            elif run_id is not None:
                final = await _closed_run(sessions, tenant, run_id)
                if final is not None:
                    continue_reading = True
                    with contextlib.suppress(Exception):
                        async with sessions() as session:
                            late = await feed_read.read(session, tenant, position, run_id=run_id)
                        continue_reading = bool(late)
                    if not continue_reading:
                        yield final
                        return
    finally:
        hub.unsubscribe(sub)


def _response(events: AsyncIterator[ServerSentEvent], settings: Settings) -> EventSourceResponse:
    return EventSourceResponse(
        events,
        ping=int(max(1, settings.stream_heartbeat_seconds)),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/v1/runs/{run_id}/stream",
    response_class=EventSourceResponse,
    responses=_SSE_DOC,
)
async def stream_run(
    request: Request,
    run_id: RunIdPath,
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalClientDep,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> EventSourceResponse:
    """The run's activity from its start (or after ``Last-Event-ID`` / ``after``) as
    Server-Sent Events, until its closing status."""
    start = _after(last_event_id, after)
    if await runs.get_run(session, principal.tenant, run_id) is None:
        await session.rollback()
        if await describe_run(client, principal.tenant, run_id) is None:
            raise NotFound(f"run {run_id!r} does not exist", code="run_not_found")
    position = await _start(session, principal.tenant, start) or (-1, 0)
    await session.rollback()  # the stream holds no connection between reads
    events = _follow(
        request.app.state.sessions,
        request.app.state.feed_hub,
        settings,
        principal.tenant,
        position,
        run_id=run_id,
    )
    return _response(events, settings)


@router.get("/v1/runs:stream", response_class=EventSourceResponse, responses=_SSE_DOC)
async def stream_runs(
    request: Request,
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    definition: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> EventSourceResponse:
    """Activity of every run of the tenant (or of one definition's runs), from now (or
    after ``Last-Event-ID`` / ``after``), as Server-Sent Events; it does not end."""
    start = _after(last_event_id, after)
    position = await _start(session, principal.tenant, start) or await feed_read.now_position(
        session
    )
    await session.rollback()
    events = _follow(
        request.app.state.sessions,
        request.app.state.feed_hub,
        settings,
        principal.tenant,
        position,
        definition=definition,
    )
    return _response(events, settings)


@router.get("/v1/runs/{run_id}/logs", response_model=RunLogsPublic)
async def read_run_logs(
    run_id: RunIdPath,
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    client: TemporalClientDep,
    level: Literal["debug", "info", "warning", "error"] = "debug",
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: str | None = None,
) -> RunLogsPublic:
    """Lines the run's actions logged at ``level`` and above, oldest first."""
    size = min(limit or settings.default_page_size, settings.max_page_size)
    after = decode_cursor(cursor, (int,))
    rows = await runlogs.list_lines(
        session,
        principal.tenant,
        run_id,
        min_level=LEVELS[level],
        after=after[0] if after else None,
        limit=size + 1,
    )
    known = rows or cursor is not None
    if not known and await runs.get_run(session, principal.tenant, run_id) is None:
        await session.rollback()
        if await describe_run(client, principal.tenant, run_id) is None:
            raise NotFound(f"run {run_id!r} does not exist", code="run_not_found")
    items = [
        RunLogLinePublic(
            id=r.id,
            time=r.logged_at,
            level=feed.level_name(r.level),
            message=r.message,
            fields=r.fields,
            step_path=r.step_path,
            loop=r.loop,
            attempt=r.attempt,
        )
        for r in rows[:size]
    ]
    next_cursor = encode_cursor([rows[size - 1].id]) if len(rows) > size else None
    return RunLogsPublic(items=items, next_cursor=next_cursor)

"""Live streams (SSE) and run logs on the real stack, over real HTTP on loopback.

The API apps here read the feed every 60 s without a wake-up, so events that arrive
within seconds arrived through ``LISTEN``/``NOTIFY`` (written by the worker, a different
component from either app).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import func, select, text

from activities.registry import ActionContext, ActionError
from app.main import create_app
from projections import feed, feed_read
from projections.models import RunFeedRow
from projections.writer import write_batch
from tempoflow.records import ProjectionBatch, RunRecord, RunStatus, StepRecord, StepStatus
from tests.integration.conftest import Stack, make_keys, until
from tests.servers import serve_app

pytestmark = pytest.mark.timeout(120)

STEPS = 20


@dataclass
class Event:
    id: str | None
    event: str
    data: Any


@dataclass
class Reading:
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    closed_by_server: bool = False


def streaming_app(stack: Stack) -> FastAPI:
    settings = stack.settings.model_copy(
        update={"stream_poll_seconds": 60.0, "stream_heartbeat_seconds": 1.0}
    )
    return create_app(settings, registry=stack.worker_registry, temporal=stack.client)


async def read_stream(
    base: str,
    path: str,
    headers: dict[str, str],
    *,
    stop: Any = None,
    reading: Reading | None = None,
    within: float = 60.0,
) -> Reading:
    """Read SSE events until the server ends the stream or ``stop(reading)`` is true
    (then the client disconnects)."""
    reading = reading or Reading()
    async with (
        asyncio.timeout(within),
        httpx.AsyncClient(base_url=base, timeout=None) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                reading.comments.append(line)
            elif line == "":
                if "data" in current:
                    reading.events.append(
                        Event(
                            current.get("id"),
                            current.get("event", "message"),
                            json.loads(current["data"]),
                        )
                    )
                    if stop is not None and stop(reading):
                        return reading
                current = {}
            else:
                name, _, value = line.partition(":")
                current[name] = value[1:] if value.startswith(" ") else value
        reading.closed_by_server = True
    return reading


def twenty_steps() -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"id": "s00", "type": "action.call", "action": "test.gate"}]
    steps += [
        {"id": f"s{i:02d}", "type": "action.call", "action": "core.noop", "input": {"i": i}}
        for i in range(1, STEPS)
    ]
    return {"steps": steps}


def kinds(reading: Reading, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in reading.events if e.event == kind]


async def test_stream_sees_every_step_of_a_20_step_run_in_order(stack: Stack) -> None:
    await stack.publish("twenty", twenty_steps())
    run = await stack.start("twenty")
    app = streaming_app(stack)
    async with serve_app(app) as base:
        # Connect while the first step holds the run: the rest arrives live.
        await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 30)
        task = asyncio.create_task(
            read_stream(base, f"/v1/runs/{run['id']}/stream", stack.auth("operator"))
        )
        await until(lambda: _subscribed(app))
        stack.effects.release[run["id"]].set()
        reading = await task
        assert _subscribers(app) == 0  # the stream's listener is gone

    assert reading.closed_by_server  # ended after the final status
    completed = kinds(reading, "step.completed")
    assert [s["stepId"] for s in completed] == [f"s{i:02d}" for i in range(STEPS)]
    assert [s["seq"] for s in completed] == sorted(s["seq"] for s in completed)
    for step in completed:
        started = [
            i
            for i, e in enumerate(reading.events)
            if e.event == "step.started" and e.data["seq"] == step["seq"]
        ]
        done = next(
            i
            for i, e in enumerate(reading.events)
            if e.event == "step.completed" and e.data["seq"] == step["seq"]
        )
        assert started and started[0] < done, step
    statuses = kinds(reading, "run.status")
    assert statuses[0]["status"] == "RUNNING"
    assert reading.events[-1].event == "run.status"
    assert reading.events[-1].data["status"] == "SUCCEEDED"
    ids = [e.id for e in reading.events]
    assert all(ids) and len(set(ids)) == len(ids)


def _subscribers(app: FastAPI) -> int:
    hub = getattr(app.state, "feed_hub", None)
    return hub.subscribers() if hub is not None else 0


async def _subscribed(app: FastAPI) -> bool:
    hub = app.state.feed_hub
    return hub.subscribers() > 0 and hub.listening.is_set()


async def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(stack: Stack) -> None:
    await stack.publish("twenty", twenty_steps())
    run = await stack.start("twenty")
    path = f"/v1/runs/{run['id']}/stream"
    app = streaming_app(stack)
    async with serve_app(app) as base:
        await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 30)
        stack.effects.release[run["id"]].set()
        # Disconnect after a few events, several times, resuming each time.
        pieces: list[Event] = []
        last: str | None = None
        for _ in range(20):
            headers = stack.auth("operator")
            if last is not None:
                headers["Last-Event-ID"] = last
            part = await read_stream(base, path, headers, stop=lambda r: len(r.events) >= 5)
            pieces += part.events
            last = part.events[-1].id if part.events else last
            if part.closed_by_server:
                break
        assert part.closed_by_server
        whole = await read_stream(base, path, stack.auth("operator"))
        # ?after= resumes like Last-Event-ID.
        middle = whole.events[10].id
        rest = await read_stream(base, f"{path}?after={middle}", stack.auth("operator"))
        await until(lambda: _none_subscribed(app))
    assert [(e.id, e.event) for e in pieces] == [(e.id, e.event) for e in whole.events]
    assert [e.id for e in rest.events] == [e.id for e in whole.events[11:]]
    assert len(kinds(whole, "step.completed")) == STEPS


async def _none_subscribed(app: FastAPI) -> bool:
    return _subscribers(app) == 0


async def test_a_second_api_process_streams_what_the_worker_writes(stack: Stack) -> None:
    """Two app instances on one database: the tenant-wide stream on the second sees the
    run started through the first, woken by notifications (its poll is 60 s)."""
    await stack.publish("twenty", twenty_steps())
    await stack.publish(
        "other", {"steps": [{"id": "n", "type": "action.call", "action": "core.noop"}]}
    )
    first, second = streaming_app(stack), streaming_app(stack)
    async with serve_app(first) as base1, serve_app(second) as base2:
        reading = Reading()
        task = asyncio.create_task(
            read_stream(
                base2,
                "/v1/runs:stream?definition=twenty",
                stack.auth("operator"),
                stop=lambda r: any(
                    e.event == "run.status" and e.data["status"] == "SUCCEEDED" for e in r.events
                ),
                reading=reading,
                within=40,  # less than the 60 s poll: notifications woke it
            )
        )
        await until(lambda: _subscribed(second))
        async with httpx.AsyncClient(base_url=base1) as http:
            r = await http.post(
                "/v1/runs",
                headers=stack.auth("operator"),
                json={"definition": "other", "input": {}},
            )
            assert r.status_code == 201, r.text
            other = r.json()
            r = await http.post(
                "/v1/runs",
                headers=stack.auth("operator"),
                json={"definition": "twenty", "input": {}},
            )
            assert r.status_code == 201, r.text
            run = r.json()
        await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 30)

        async def pinged() -> bool:  # heartbeats are comment lines (every 1 s here)
            return any(c.startswith(": ping") for c in reading.comments)

        await until(pinged, within=10)
        stack.effects.release[run["id"]].set()
        await task
        await stack.result(other)
    runs = {e.data["runId"] for e in reading.events}
    assert runs == {run["id"]}  # only the definition asked for
    completed = kinds(reading, "step.completed")
    assert [s["stepId"] for s in completed] == [f"s{i:02d}" for i in range(STEPS)]


async def test_streams_and_logs_are_tenant_scoped(stack: Stack) -> None:
    await stack.publish("twenty", twenty_steps())
    run = await stack.start("twenty")
    other_keys = await make_keys(
        stack.sessions, "other-" + stack.tenant, stack.settings.api_key_pepper
    )
    other = {"Authorization": f"Bearer {other_keys['operator']}"}
    app = streaming_app(stack)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as http:
        for path in (f"/v1/runs/{run['id']}/stream", f"/v1/runs/{run['id']}/logs"):
            r = await http.get(path, headers=other)
            assert r.status_code == 404, r.text
            assert r.json()["code"] == "run_not_found"
        # The other tenant's tenant-wide stream sees nothing of this run.
        theirs = Reading()
        task = asyncio.create_task(
            read_stream(base, "/v1/runs:stream", other, stop=lambda r: False, reading=theirs)
        )
        await until(lambda: _subscribed(app))
        await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 30)
        stack.effects.release[run["id"]].set()
        await stack.result(run)
        ours = await read_stream(base, f"/v1/runs/{run['id']}/stream", stack.auth("operator"))
        # Resuming with another tenant's event id replays nothing of ours to them.
        first_id = ours.events[0].id
        assert first_id is not None
        await asyncio.sleep(1.5)  # a heartbeat or two reach the other stream meanwhile
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert theirs.events == [] and theirs.comments
        r = await http.get(
            f"/v1/runs/{run['id']}/stream", headers={**other, "Last-Event-ID": first_id}
        )
        assert r.status_code == 404
        r = await http.get(
            f"/v1/runs/{run['id']}/stream",
            headers={**stack.auth("operator"), "Last-Event-ID": "not-a-number"},
        )
        assert r.status_code == 422 and r.json()["code"] == "last_event_id_invalid"
        r = await http.get(f"/v1/runs/{run['id']}/stream", headers=stack.auth("publisher"))
        assert r.status_code == 403


class Note(BaseModel):
    note: str


async def test_run_logs_by_level_and_in_the_stream(stack: Stack) -> None:
    registry = stack.worker_registry

    @registry.action("test.chatty", input_model=Note, output_model=Note)
    async def chatty(data: Note, ctx: ActionContext) -> Note:
        ctx.logger.debug("debug detail %s", data.note)
        ctx.logger.warning("attempt %d of a chatty action", ctx.attempt, extra={"fields": {"n": 1}})
        if ctx.attempt == 1:
            raise ActionError("Transient", "first attempt fails", retryable=True)
        return data

    definition = {
        "steps": [
            {
                "id": "hello",
                "type": "action.call",
                "action": "core.log",
                "input": {"message": "hello", "level": "info", "fields": {"order": "o-1"}},
            },
            {
                "id": "oops",
                "type": "action.call",
                "action": "core.log",
                "input": {"message": "oops", "level": "error"},
            },
            {
                "id": "chat",
                "type": "action.call",
                "action": "test.chatty",
                "input": {"note": "x"},
                "retry": {"maxAttempts": 3, "initialInterval": "PT0.1S"},
            },
        ]
    }
    await stack.publish("logs", definition)
    run = await stack.start("logs")
    await stack.result(run)

    async def logs(query: str = "") -> dict[str, Any]:
        r = await stack.http.get(
            f"/v1/runs/{run['id']}/logs{query}", headers=stack.auth("operator")
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    everything = (await logs())["items"]
    assert [(i["message"], i["level"], i["stepPath"], i["attempt"]) for i in everything] == [
        ("hello", "info", "/steps/0", 1),
        ("oops", "error", "/steps/1", 1),
        ("attempt 1 of a chatty action", "warning", "/steps/2", 1),
        ("attempt 2 of a chatty action", "warning", "/steps/2", 2),
    ]  # debug lines are below the default run-log level (info)
    assert everything[0]["fields"] == {"order": "o-1"}
    assert everything[2]["fields"] == {"n": 1}
    warnings = (await logs("?level=warning"))["items"]
    assert [i["message"] for i in warnings] == [i["message"] for i in everything[1:]]
    assert [i["message"] for i in (await logs("?level=error"))["items"]] == ["oops"]
    # Paged.
    page = await logs("?limit=3")
    assert len(page["items"]) == 3 and page["nextCursor"]
    rest = await logs(f"?limit=3&cursor={page['nextCursor']}")
    assert [i["id"] for i in page["items"] + rest["items"]] == [i["id"] for i in everything]
    assert rest["nextCursor"] is None
    r = await stack.http.get(
        f"/v1/runs/{run['id']}/logs?level=loud", headers=stack.auth("operator")
    )
    assert r.status_code == 422

    app = streaming_app(stack)
    async with serve_app(app) as base:
        reading = await read_stream(base, f"/v1/runs/{run['id']}/stream", stack.auth())
    lines = kinds(reading, "log")
    assert [(x["message"], x["level"], x["attempt"]) for x in lines] == [
        (i["message"], i["level"], i["attempt"]) for i in everything
    ]
    retrying = kinds(reading, "step.retrying")
    assert [(s["stepId"], s["attempt"]) for s in retrying] == [("chat", 1)]
    assert retrying[0]["error"]["type"] == "Transient"


async def test_repeated_projection_writes_add_no_feed_entries(stack: Stack) -> None:
    now = await _db_now(stack)
    run = RunRecord(
        run_id="r-dup",
        tenant=stack.tenant,
        workflow_id=f"{stack.tenant}/r-dup",
        definition_key="dup",
        definition_version=1,
        status=RunStatus.RUNNING,
        seq=1,
        started_at=now,
    )
    step = StepRecord(
        run_id="r-dup",
        tenant=stack.tenant,
        seq=1,
        path="/steps/0",
        step_id="a",
        type="state.set",
        status=StepStatus.SUCCEEDED,
        started_at=now,
        finished_at=now,
    )
    batch = ProjectionBatch(run=run, steps=[step.model_copy(update={"status": "RUNNING"}), step])
    for _ in range(3):
        async with stack.sessions.begin() as session:
            await write_batch(session, batch)
    async with stack.sessions() as session:
        rows = (
            await session.execute(
                select(RunFeedRow.kind, RunFeedRow.definition_key)
                .where(RunFeedRow.run_id == "r-dup")
                .order_by(RunFeedRow.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("run.status", "dup"),
        ("step.started", "dup"),
        ("step.completed", "dup"),
    ]


async def _db_now(stack: Stack) -> Any:
    async with stack.sessions() as session:
        return (await session.execute(select(func.now()))).scalar_one()


async def test_readers_never_pass_an_entry_that_commits_later(stack: Stack) -> None:
    """Feed ids are taken at insert: a transaction that took an id earlier but commits
    later must not be skipped by a reader that already saw a later id."""
    now = await _db_now(stack)

    def batch(run_id: str) -> ProjectionBatch:
        return ProjectionBatch(
            run=RunRecord(
                run_id=run_id,
                tenant=stack.tenant,
                workflow_id=f"{stack.tenant}/{run_id}",
                definition_key="order",
                definition_version=1,
                status=RunStatus.RUNNING,
                seq=1,
                started_at=now,
            )
        )

    async with stack.sessions() as reader:
        start = await feed_read.now_position(reader)
        await reader.rollback()
    slow = stack.sessions()
    await slow.begin()
    try:
        await write_batch(slow, batch("r-slow"))  # takes the earlier id, commits last
        async with stack.sessions.begin() as fast:
            await write_batch(fast, batch("r-fast"))
        async with stack.sessions() as reader:
            assert await feed_read.read(reader, stack.tenant, start) == []  # r-slow not final
            visible = (
                await reader.execute(text("SELECT count(*) FROM run_feed WHERE run_id = 'r-fast'"))
            ).scalar_one()
            assert visible == 1  # committed, but held back
        await slow.commit()
    finally:
        await slow.close()
    async with stack.sessions() as reader:
        entries = await feed_read.read(reader, stack.tenant, start)
    assert [e.run_id for e in entries] == ["r-slow", "r-fast"]
    assert entries[0].id < entries[1].id


async def test_a_run_closed_from_temporal_ends_its_stream(stack: Stack) -> None:
    """A projection closed without a write of the run (the reconciler's way) still ends
    the run's streams: at once with ``feed.emit_run_closed``, else at the next poll with
    a closing status without id."""
    await stack.publish("twenty", twenty_steps())
    first, second = await stack.start("twenty"), await stack.start("twenty")
    settings = stack.settings.model_copy(update={"stream_poll_seconds": 1.0})
    app = create_app(settings, registry=stack.worker_registry, temporal=stack.client)
    try:
        async with serve_app(app) as base:
            for run in (first, second):
                await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 30)
            readings = [
                asyncio.create_task(
                    read_stream(base, f"/v1/runs/{run['id']}/stream", stack.auth(), within=30)
                )
                for run in (first, second)
            ]
            await until(lambda: _count_subscribed(app, 2))
            async with stack.sessions.begin() as session:
                for run in (first, second):
                    await session.execute(
                        text("UPDATE runs SET status = 'CANCELED' WHERE run_id = :r"),
                        {"r": run["id"]},
                    )
                await feed.emit_run_closed(session, stack.tenant, first["id"], "CANCELED")
            emitted, synthesized = await asyncio.gather(*readings)
    finally:
        for run in (first, second):
            stack.effects.release[run["id"]].set()
    for reading in (emitted, synthesized):
        assert reading.closed_by_server
        assert reading.events[-1].event == "run.status"
        assert reading.events[-1].data["status"] == "CANCELED"
    assert emitted.events[-1].id is not None
    assert emitted.events[-1].data["definition"] == "twenty"
    assert synthesized.events[-1].id is None


async def _count_subscribed(app: FastAPI, n: int) -> bool:
    return _subscribers(app) == n and app.state.feed_hub.listening.is_set()


async def test_entries_held_back_by_an_unrelated_transaction_arrive_when_it_ends(
    stack: Stack,
) -> None:
    """An older write transaction that notifies no one (not a projection write) holds
    entries back only while it lasts: the stream looks again after its wake-up."""
    now = await _db_now(stack)
    app = streaming_app(stack)  # polls every 60 s: only the wake-up and settling help
    async with serve_app(app) as base:
        reading = Reading()
        task = asyncio.create_task(
            read_stream(
                base,
                "/v1/runs:stream",
                stack.auth(),
                stop=lambda r: len(r.events) >= 1,
                reading=reading,
                within=30,
            )
        )
        await until(lambda: _subscribed(app))
        other = stack.sessions()
        await other.begin()
        try:
            await other.execute(text("SELECT pg_current_xact_id()"))  # an older xid
            async with stack.sessions.begin() as session:
                await write_batch(
                    session,
                    ProjectionBatch(
                        run=RunRecord(
                            run_id="r-held",
                            tenant=stack.tenant,
                            workflow_id=f"{stack.tenant}/r-held",
                            definition_key="d",
                            definition_version=1,
                            status=RunStatus.RUNNING,
                            seq=1,
                            started_at=now,
                        )
                    ),
                )
            await asyncio.sleep(1.5)
            assert reading.events == []  # held back while the older transaction lasts
        finally:
            await other.commit()
            await other.close()
        await task
    assert [e.data["runId"] for e in reading.events] == ["r-held"]

"""The dispatcher's bookkeeping against the real database and Temporal: one delivery per
run, verdicts never overwritten, settling only what it still holds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from app.events.dispatcher import Dispatcher
from projections.models import Event, EventDeliveryRow, WaitRow
from projections.writer import DELIVERY_UPSERT, write_batch
from tempoflow.records import DeliveryRecord, DeliveryStatus, ProjectionBatch
from tempoflow.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def dispatcher(
    database_url: str, sessions: async_sessionmaker[AsyncSession], temporal_client: Client
) -> Dispatcher:
    settings = Settings(environment="test", database_url=database_url, task_queue="unused")
    return Dispatcher(sessions, temporal_client, settings)


def _event(tenant: str, event_id: str, key: str) -> Event:
    return Event(
        tenant=tenant,
        event_id=event_id,
        name="n",
        correlation_key=key,
        payload={},
        status="PENDING",
        attempts=0,
    )


def _wait(tenant: str, run_id: str, seq: int, key: str, expires: datetime | None) -> WaitRow:
    return WaitRow(
        run_id=run_id,
        seq=seq,
        tenant=tenant,
        workflow_id=f"{tenant}/{run_id}",
        step_path=f"/steps/{seq}",
        event_names=["n"],
        correlation_key=key,
        status="WAITING",
        since=datetime.now(UTC) - timedelta(minutes=5),
        expires_at=expires,
    )


async def _deliveries(sessions: async_sessionmaker[AsyncSession], tenant: str) -> list[tuple]:
    async with sessions() as session:
        rows = await session.execute(
            select(EventDeliveryRow.event_id, EventDeliveryRow.run_id, EventDeliveryRow.status)
            .where(EventDeliveryRow.tenant == tenant)
            .order_by(EventDeliveryRow.event_id, EventDeliveryRow.run_id)
        )
        return [tuple(r) for r in rows.all()]


async def test_a_live_wait_wins_over_an_expired_one_of_the_same_run(
    dispatcher: Dispatcher, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = f"d{uuid.uuid4().hex[:8]}"
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with sessions.begin() as session:
        session.add(_event(tenant, "e1", "k"))
        session.add(_wait(tenant, "run-a", 1, "k", past))  # expired, older
        session.add(_wait(tenant, "run-a", 2, "k", None))  # live
        session.add(_wait(tenant, "run-b", 1, "k", past))  # only expired
    while await dispatcher.dispatch_once():
        pass
    # run-a's live wait was signalled (the workflow does not exist: RUN_CLOSED), run-b's
    # only wait had expired.
    assert await _deliveries(sessions, tenant) == [
        ("e1", "run-a", "RUN_CLOSED"),
        ("e1", "run-b", "EXPIRED"),
    ]


async def test_a_run_verdict_is_never_overwritten_by_a_dispatcher_outcome(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = f"d{uuid.uuid4().hex[:8]}"
    row = {"tenant": tenant, "event_id": "e", "run_id": "r", "workflow_id": "w", "kind": "wait"}
    applied = DeliveryRecord(
        tenant=tenant, event_id="e", run_id="r", workflow_id="w", status=DeliveryStatus.APPLIED
    )
    async with sessions.begin() as session:
        await session.execute(DELIVERY_UPSERT, [{**row, "status": "PENDING", "reason": None}])
        await write_batch(session, ProjectionBatch(deliveries=[applied]))
        await session.execute(DELIVERY_UPSERT, [{**row, "status": "RUN_CLOSED", "reason": "x"}])
        await session.execute(DELIVERY_UPSERT, [{**row, "status": "SIGNALED", "reason": None}])
    assert await _deliveries(sessions, tenant) == [("e", "r", "APPLIED")]


async def test_settling_skips_events_another_dispatcher_claimed(
    dispatcher: Dispatcher, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = f"d{uuid.uuid4().hex[:8]}"
    async with sessions.begin() as session:
        session.add(_event(tenant, "slow", "k"))
        session.add(_wait(tenant, "run-c", 1, "k", None))
    async with sessions.begin() as session:
        events, claimed = await dispatcher._claim(session)
        targets = await dispatcher._route(session, events)
    assert [e.event_id for e in events] == ["slow"] and len(targets) == 1
    # Its lease ran out meanwhile and another dispatcher claimed it (a new attempt).
    async with sessions.begin() as session:
        await session.execute(
            update(Event).where(Event.tenant == tenant).values(attempts=Event.attempts + 1)
        )
    targets[0].outcome = DeliveryStatus.SIGNALED
    async with sessions.begin() as session:
        await dispatcher._settle(session, events, targets, claimed)
    async with sessions() as session:
        event = (await session.execute(select(Event).where(Event.tenant == tenant))).scalar_one()
    assert event.status == "PENDING"  # the current holder settles it, not this one
    assert await _deliveries(sessions, tenant) == [("slow", "run-c", "PENDING")]


async def test_stop_ends_the_loop_promptly(dispatcher: Dispatcher) -> None:
    """Stopping never hangs, whether the loop is polling, routing or backing off."""
    dispatcher.settings.dispatch_poll_seconds = 0.01
    for pause in (0.0, 0.005, 0.01, 0.02, 0.05):
        dispatcher.start()
        await asyncio.sleep(pause)
        await asyncio.wait_for(dispatcher.stop(), 5)


async def test_an_event_that_cannot_be_sent_fails_for_good_and_holds_nothing_back(
    dispatcher: Dispatcher, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A payload nested too deep for the signal encoder is a permanent error: its delivery
    ends FAILED with the reason (not retried forever); the other event is delivered."""
    tenant = f"d{uuid.uuid4().hex[:8]}"
    deep: object = "x"
    for _ in range(400):
        deep = {"a": deep}
    async with sessions.begin() as session:
        bad = _event(tenant, "deep", "k")
        bad.payload = deep
        session.add(bad)
        session.add(_event(tenant, "fine", "k"))
        session.add(_wait(tenant, "run-x", 1, "k", None))
    for _ in range(20):
        await dispatcher.dispatch_once()
        async with sessions() as session:
            statuses = set(
                (
                    await session.execute(select(Event.status).where(Event.tenant == tenant))
                ).scalars()
            )
        if statuses == {"ROUTED"}:
            break
        await asyncio.sleep(0.2)
        async with sessions.begin() as session:  # no backoff wait in the test
            await session.execute(
                update(Event).where(Event.tenant == tenant).values(next_attempt_at=func.now())
            )
    assert statuses == {"ROUTED"}
    async with sessions() as session:
        rows = (
            await session.execute(select(EventDeliveryRow).where(EventDeliveryRow.tenant == tenant))
        ).scalars()
        found = {r.event_id: (r.status, r.reason or "") for r in rows}
    assert found["deep"][0] == "FAILED" and "cannot be sent" in found["deep"][1]
    assert found["fine"][0] == "RUN_CLOSED"  # no such workflow: the signal was answered

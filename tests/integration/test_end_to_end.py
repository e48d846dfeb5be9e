"""Publish → start → run → projections, over HTTP against the real servers."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError

from tests.integration.conftest import Stack, until

ORDER = {
    "inputSchema": {
        "type": "object",
        "required": ["orderId", "items"],
        "properties": {"orderId": {"type": "string"}, "items": {"type": "array"}},
    },
    "steps": [
        {
            "id": "init",
            "type": "state.set",
            "values": {"status": "new", "orderId": {"$expr": "payload.orderId"}},
        },
        {
            "id": "total",
            "type": "transform.assign",
            "assign": {"total": "$sum(payload.items.(price * qty))"},
        },
        {
            "id": "charge",
            "type": "action.call",
            "action": "test.echo",
            "input": {"amount": {"$expr": "vars.total"}, "order": {"$expr": "vars.orderId"}},
            "output": "payment",
        },
        {
            "id": "big",
            "type": "control.if",
            "condition": "vars.total > 100",
            "then": [{"id": "flag", "type": "state.set", "values": {"review": True}}],
            "else": [{"id": "noflag", "type": "state.set", "values": {"review": False}}],
        },
        {
            "id": "done",
            "type": "control.return",
            "output": {
                "order": {"$expr": "vars.orderId"},
                "total": {"$expr": "vars.total"},
                "review": {"$expr": "vars.review"},
                "paid": {"$expr": "vars.payment.amount"},
            },
        },
    ],
}
ORDER_INPUT = {"orderId": "o-1", "items": [{"price": 30, "qty": 2}, {"price": 50, "qty": 1}]}


async def test_run_succeeds_and_projection_matches(stack: Stack) -> None:
    assert await stack.publish("order", ORDER) == 1
    run = await stack.start("order", ORDER_INPUT)
    assert run["status"] == "RUNNING"
    assert run["workflowId"] == f"{stack.tenant}/{run['id']}"

    result = await stack.result(run)
    assert result["output"] == {"order": "o-1", "total": 110, "review": True, "paid": 110}
    await stack.record_history(run, "every_node_type")

    view = await stack.run_view(run["id"])
    assert view["status"] == "SUCCEEDED"
    assert view["source"] == "projection"
    assert view["output"] == result["output"]
    assert view["input"] == ORDER_INPUT
    assert view["closedAt"] is not None
    assert view["temporalUiUrl"].endswith(run["workflowId"].replace("/", "%2F"))

    steps = await stack.steps(run["id"])
    assert [(s["seq"], s["stepId"], s["type"], s["status"]) for s in steps] == [
        (1, "init", "state.set", "SUCCEEDED"),
        (2, "total", "transform.assign", "SUCCEEDED"),
        (3, "charge", "action.call", "SUCCEEDED"),
        (4, "big", "control.if", "SUCCEEDED"),
        (5, "flag", "state.set", "SUCCEEDED"),
        (6, "done", "control.return", "SUCCEEDED"),
    ]
    charge = steps[2]
    assert charge["path"] == "/steps/2"
    assert charge["attempt"] == 1
    assert charge["input"] == {"amount": 110, "order": "o-1"}
    assert charge["output"] == {"amount": 110, "order": "o-1", "attempt": 1}
    assert steps[3]["output"] == {"branch": "then"}
    assert steps[4]["path"] == "/steps/3/then/0"
    assert stack.effects.calls[(run["id"], "charge")] == 1

    listed = (await stack.http.get("/v1/runs", headers=stack.auth())).json()["items"]
    assert [r["id"] for r in listed] == [run["id"]]


async def test_failing_action_fails_run_with_step_path(stack: Stack) -> None:
    await stack.publish(
        "pay",
        {
            "steps": [
                {"id": "a", "type": "state.set", "values": {"x": 1}},
                {
                    "id": "guard",
                    "type": "control.if",
                    "condition": "vars.x = 1",
                    "then": [
                        {
                            "id": "charge",
                            "type": "action.call",
                            "action": "test.fail",
                            "input": {"type": "PaymentDeclined", "message": "card declined"},
                        },
                    ],
                },
                {"id": "never", "type": "state.set", "values": {"y": 2}},
            ]
        },
    )
    run = await stack.start("pay")
    with pytest.raises(WorkflowFailureError) as failure:
        await stack.result(run)
    assert failure.value.cause.type == "PaymentDeclined"  # type: ignore[attr-defined]
    await stack.record_history(run, "failing_action")

    view = await stack.run_view(run["id"])
    assert view["status"] == "FAILED"
    assert view["error"]["type"] == "PaymentDeclined"
    assert view["error"]["stepPath"] == "/steps/1/then/0"
    assert view["error"]["message"] == "card declined"
    steps = {s["stepId"]: s for s in await stack.steps(run["id"])}
    assert steps["charge"]["status"] == "FAILED"
    assert steps["charge"]["attempt"] == 1  # non-retryable: one attempt only
    assert steps["charge"]["input"] == {"type": "PaymentDeclined", "message": "card declined"}
    assert steps["guard"]["status"] == "FAILED"
    assert "never" not in steps
    assert stack.effects.calls[(run["id"], "charge")] == 1


async def test_retryable_action_retries_then_succeeds(stack: Stack) -> None:
    await stack.publish(
        "flaky",
        {
            "steps": [
                {
                    "id": "call",
                    "type": "action.call",
                    "action": "test.flaky",
                    "input": {"failures": 2},
                    "output": "r",
                    "retry": {"maxAttempts": 5, "initialInterval": "PT0.05S"},
                },
            ]
        },
    )
    run = await stack.start("flaky")
    result = await stack.result(run)
    assert result["output"] == {"r": {"succeededOnAttempt": 3}}
    steps = await stack.steps(run["id"])
    assert steps[0]["attempt"] == 3 and steps[0]["status"] == "SUCCEEDED"
    # Every attempt carried the same idempotency key.
    assert len(stack.effects.keys[(run["id"], "call")]) == 1


async def test_idempotent_start_returns_same_run(stack: Stack) -> None:
    await stack.publish("once", {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}]})
    first = await stack.start("once", {"n": 1}, idempotencyKey="order-42")
    r = await stack.http.post(
        "/v1/runs",
        headers=stack.auth(),
        json={"definition": "once", "input": {"n": 1}, "idempotencyKey": "order-42"},
    )
    assert r.status_code == 200
    assert r.json()["id"] == first["id"]
    await stack.result(first)
    # Still the same run after it closed.
    r = await stack.http.post(
        "/v1/runs",
        headers=stack.auth(),
        json={"definition": "once", "input": {"n": 1}, "idempotencyKey": "order-42"},
    )
    assert r.status_code == 200 and r.json()["id"] == first["id"]
    assert r.json()["status"] == "SUCCEEDED"
    # The same key with another request is a conflict, not a silent different run.
    r = await stack.http.post(
        "/v1/runs",
        headers=stack.auth(),
        json={"definition": "once", "input": {"n": 2}, "idempotencyKey": "order-42"},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "idempotency_key_reused"
    runs = (await stack.http.get("/v1/runs", headers=stack.auth())).json()["items"]
    assert len(runs) == 1


async def test_input_schema_rejects_bad_input(stack: Stack) -> None:
    await stack.publish("order", ORDER)
    r = await stack.http.post(
        "/v1/runs", headers=stack.auth(), json={"definition": "order", "input": {"orderId": 5}}
    )
    assert r.status_code == 422
    body = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert body["code"] == "input_invalid"
    assert {e["path"] for e in body["errors"]} == {"/input", "/input/orderId"}


async def test_expression_error_at_run_time_fails_step(stack: Stack) -> None:
    await stack.publish(
        "bad",
        {
            "steps": [
                {"id": "calc", "type": "transform.assign", "assign": {"x": "$number('abc')"}},
            ]
        },
    )
    run = await stack.start("bad")
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    view = await stack.run_view(run["id"])
    assert view["status"] == "FAILED"
    assert view["error"]["type"] == "ExpressionError"
    assert view["error"]["stepPath"] == "/steps/0"
    assert view["error"]["details"]["path"] == "/steps/0/assign/x"


async def test_search_attributes_filter_runs_in_temporal(stack: Stack) -> None:
    await stack.publish("findme", {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}]})
    run = await stack.start("findme")
    await stack.result(run)
    query = (
        f'TempoflowTenant = "{stack.tenant}" AND TempoflowDefinition = "findme" '
        "AND TempoflowDefinitionVersion = 1"
    )

    async def listed() -> list[str]:  # visibility is eventually consistent
        return [w.id async for w in stack.client.list_workflows(query)]

    assert await until(listed) == [run["workflowId"]]


async def test_worker_registers_missing_search_attributes(stack: Stack) -> None:
    from datetime import timedelta

    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest

    from launcher.search_attributes import ensure_registered
    from temporal_workflows.search_attributes import ALL

    namespace = f"ns-{stack.tenant}"
    await stack.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace,
            workflow_execution_retention_period=Duration(
                seconds=int(timedelta(days=1).total_seconds())
            ),
        )
    )

    async def names() -> set[str]:
        listed = await stack.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        return set(listed.custom_attributes)

    assert not {k.name for k in ALL} <= await names()
    await ensure_registered(stack.client, namespace)
    assert {k.name for k in ALL} <= await names()
    await ensure_registered(stack.client, namespace)  # a second call changes nothing

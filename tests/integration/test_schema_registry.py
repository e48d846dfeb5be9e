"""Registries for editors: node types, the definition language's JSON Schema, named
schemas (immutable) that definitions and event types refer to and pin."""

from __future__ import annotations

from pathlib import Path

import jsonschema

from tempoflow.definition import NODE_TYPES
from tests.integration.conftest import Stack

ORDER = {
    "type": "object",
    "required": ["id", "total"],
    "properties": {"id": {"$ref": "#/$defs/OrderId"}, "total": {"type": "number"}},
    "$defs": {"OrderId": {"type": "string", "pattern": "^o-[0-9]+$"}},
}
USES_ORDER = {
    "inputSchema": {
        "type": "object",
        "required": ["order"],
        "properties": {"order": {"$ref": "schema:payload.Order.v1"}},
    },
    "steps": [
        {"id": "a", "type": "transform.assign", "assign": {"total": "payload.order.total"}},
        {"id": "b", "type": "control.return", "output": {"$expr": "vars.total"}},
    ],
}
REPO = Path(__file__).resolve().parents[2]


async def test_node_types_carry_their_config_schema(stack: Stack) -> None:
    r = await stack.http.get("/v1/node-types", headers=stack.auth("operator"))
    assert r.status_code == 200, r.text
    items = {n["type"]: n for n in r.json()["items"]}
    assert set(items) == NODE_TYPES
    call = items["action.call"]
    assert call["fields"]["action"] == "action" and call["fields"]["input"] == "template"
    assert items["event.wait"]["scopeNames"] == {"filter": ["event"]}
    assert items["control.if"]["description"].startswith("Run ``then``")
    for node in items.values():
        jsonschema.Draft202012Validator.check_schema(node["configSchema"])
    check = jsonschema.Draft202012Validator(call["configSchema"])
    assert check.is_valid({"id": "s", "type": "action.call", "action": "core.echo"})
    assert not check.is_valid({"id": "s", "type": "action.call", "action": "x", "bogus": 1})
    assert (await stack.http.get("/v1/node-types")).status_code == 401


async def test_definition_schema_is_served_as_checked_in(stack: Stack) -> None:
    r = await stack.http.get("/v1/schemas/definition.json", headers=stack.auth("operator"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/schema+json")
    assert r.text == (REPO / "schemas" / "definition.json").read_text(encoding="utf-8")


async def test_named_schemas_are_immutable(stack: Stack, other_tenant: dict[str, str]) -> None:
    url = "/v1/schemas/payload.Order.v1"
    r = await stack.http.put(url, headers=stack.auth("publisher"), json={"schema": ORDER})
    assert r.status_code == 201, r.text
    assert r.json()["ref"] == "payload.Order.v1" and r.json()["schema"] == ORDER
    # The same content again is a no-op; other content under the ref is refused.
    r = await stack.http.put(url, headers=stack.auth("publisher"), json={"schema": ORDER})
    assert r.status_code == 200
    changed = {**ORDER, "required": ["id"]}
    r = await stack.http.put(url, headers=stack.auth("publisher"), json={"schema": changed})
    assert r.status_code == 409 and r.json()["code"] == "schema_ref_conflict"
    assert "new ref" in r.json()["hint"]
    r = await stack.http.get(url, headers=stack.auth("operator"))
    assert r.status_code == 200 and r.json()["schema"] == ORDER
    listed = (await stack.http.get("/v1/schemas", headers=stack.auth("operator"))).json()
    assert [i["ref"] for i in listed["items"]] == ["payload.Order.v1"]
    # Tenants see only their own; operators may read but not write.
    assert (await stack.http.get(url, headers=other_tenant)).status_code == 404
    r = await stack.http.put(
        "/v1/schemas/payload.Other.v1", headers=stack.auth("operator"), json={"schema": ORDER}
    )
    assert r.status_code == 403
    r = await stack.http.get("/v1/schemas/payload.Nope.v1", headers=stack.auth())
    assert r.status_code == 404 and r.json()["code"] == "schema_not_found"


async def test_named_schema_bodies_are_checked(stack: Stack) -> None:
    put = stack.http.put
    r = await put("/v1/schemas/bad.v1", headers=stack.auth(), json={"schema": {"type": "nonsense"}})
    assert r.status_code == 422 and r.json()["code"] == "schema_invalid"
    assert {(e["path"], e["code"]) for e in r.json()["errors"]} == {
        ("/schema/type", "schema.invalid")
    }
    r = await put(
        "/v1/schemas/refers.v1",
        headers=stack.auth(),
        json={"schema": {"properties": {"a": {"$ref": "schema:missing.v1"}}}},
    )
    assert r.status_code == 422
    assert [(e["path"], e["code"]) for e in r.json()["errors"]] == [
        ("/schema/properties/a/$ref", "schema_ref.unknown")
    ]
    r = await put(
        "/v1/schemas/with.id",
        headers=stack.auth(),
        json={"schema": {"$id": "https://example.com/order.json", "type": "object"}},
    )
    assert r.status_code == 422
    assert [e["code"] for e in r.json()["errors"]] == ["schema.id_not_allowed"]
    r = await put("/v1/schemas/definition.json", headers=stack.auth(), json={"schema": {}})
    assert r.status_code == 422 and r.json()["code"] == "schema_ref_invalid"
    r = await put("/v1/schemas/a..b", headers=stack.auth(), json={"schema": {}})
    assert r.status_code == 422 and r.json()["code"] == "schema_ref_invalid"


async def test_publish_pins_the_named_schema(stack: Stack) -> None:
    # An unknown ref is a publish error at its path.
    r = await stack.http.put(
        "/v1/definitions/orders",
        headers=stack.auth(),
        json={"name": "orders", "definition": USES_ORDER},
    )
    assert r.status_code == 201
    r = await stack.http.post("/v1/definitions/orders/publish", headers=stack.auth())
    assert r.status_code == 422, r.text
    assert [(e["path"], e["code"]) for e in r.json()["errors"]] == [
        ("/inputSchema/properties/order/$ref", "schema_ref.unknown")
    ]
    r = await stack.http.put(
        "/v1/schemas/payload.Order.v1", headers=stack.auth(), json={"schema": ORDER}
    )
    assert r.status_code == 201
    r = await stack.http.post("/v1/definitions/orders/validate", headers=stack.auth())
    assert r.status_code == 200, r.text
    assert await stack.publish("orders", USES_ORDER) == 1
    assert await stack.publish("orders", USES_ORDER) == 1  # pinned content is stable
    version = (
        await stack.http.get("/v1/definitions/orders/versions/1", headers=stack.auth())
    ).json()
    pinned = version["definition"]["inputSchema"]
    assert pinned["properties"]["order"] == {"$ref": "schema:payload.Order.v1"}
    assert pinned["$defs"]["schema:payload.Order.v1"] == {**ORDER, "$id": "schema:payload.Order.v1"}
    # Runs are checked against the pinned schema (its own #/$defs refs included)...
    r = await stack.http.post(
        "/v1/runs",
        headers=stack.auth(),
        json={"definition": "orders", "input": {"order": {"id": "42", "total": 3}}},
    )
    assert r.status_code == 422 and r.json()["code"] == "input_invalid"
    assert [e["path"] for e in r.json()["errors"]] == ["/input/order/id"]
    # ...and run.
    run = await stack.start("orders", {"order": {"id": "o-42", "total": 3.5}})
    assert (await stack.result(run))["output"] == 3.5


async def test_event_types_pin_named_schemas(stack: Stack) -> None:
    body = {
        "schema": {"$ref": "schema:payload.Order.v1"},
        "correlation": {"paths": ["/payload/id"]},
    }
    r = await stack.http.put("/v1/event-types/order.placed", headers=stack.auth(), json=body)
    assert r.status_code == 422 and r.json()["code"] == "event_type_invalid"
    assert [(e["path"], e["code"]) for e in r.json()["errors"]] == [
        ("/schema/$ref", "schema_ref.unknown")
    ]
    await stack.http.put(
        "/v1/schemas/payload.Order.v1", headers=stack.auth(), json={"schema": ORDER}
    )
    r = await stack.http.put("/v1/event-types/order.placed", headers=stack.auth(), json=body)
    assert r.status_code == 201, r.text
    assert r.json()["schema"]["$defs"]["schema:payload.Order.v1"]["required"] == ["id", "total"]
    r = await stack.http.post(
        "/v1/events",
        headers=stack.auth(),
        json={"name": "order.placed", "payload": {"id": "o-1"}},
    )
    assert r.status_code == 422 and r.json()["code"] == "event_invalid"
    r = await stack.http.post(
        "/v1/events",
        headers=stack.auth(),
        json={"name": "order.placed", "payload": {"id": "o-1", "total": 1}},
    )
    assert r.status_code == 202, r.text


async def test_coalesce_and_double_equals_at_publish(stack: Stack) -> None:
    bad = {"steps": [{"id": "a", "type": "control.if", "condition": "payload.x == 1"}]}
    r = await stack.http.post(
        "/v1/definitions/eq/validate", headers=stack.auth(), json={"definition": bad}
    )
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert (error["path"], error["code"], error["position"]) == ("/steps/0/condition", "TF1003", 10)
    assert "'='" in error["hint"]
    flow = {
        "steps": [
            {
                "id": "a",
                "type": "control.return",
                "output": {"$expr": "$coalesce(payload.nickname, payload.name, 'anonymous')"},
            }
        ]
    }
    assert await stack.publish("greet", flow) == 1
    run = await stack.start("greet", {"nickname": None, "name": "Ada"})
    assert (await stack.result(run))["output"] == "Ada"

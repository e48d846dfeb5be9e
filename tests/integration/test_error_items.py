"""Every 422 lists its failing fields in one shape: ``ErrorItem`` (``path``, ``code``,
``message``, optional ``hint`` and ``position``; definition issues add ``severity``)."""

from __future__ import annotations

from typing import Any

from tempoflow.errors import ErrorItem
from tests.integration.conftest import Stack


def _items(r: Any, code: str) -> list[dict[str, Any]]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == code and body["status"] == 422
    assert body["errors"], body
    for item in body["errors"]:
        assert ErrorItem.model_validate(item).model_dump(exclude_none=True) == item
    return list(body["errors"])


async def test_every_422_has_the_one_error_item_shape(stack: Stack) -> None:
    admin = stack.auth()
    bad_definition = {"steps": [{"id": "a", "type": "transform.assign", "assign": {"x": "1 +"}}]}
    await stack.http.put(
        "/v1/definitions/shape-bad", headers=admin, json={"name": "x", "definition": bad_definition}
    )
    r = await stack.http.post("/v1/definitions/shape-bad/validate", headers=admin)
    items = _items(r, "definition_invalid")
    assert items[0]["path"] == "/steps/0/assign/x" and "position" in items[0]

    r = await stack.http.get("/v1/runs?cursor=nonsense", headers=admin)
    assert _items(r, "cursor_invalid") == [
        {"path": "query:/cursor", "code": "cursor_invalid", "message": "bad cursor"}
    ]

    r = await stack.http.post("/v1/runs", headers=admin, json={"input": {}})
    assert {i["path"] for i in _items(r, "request_invalid")} == {"/definition"}

    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    await stack.publish(
        "shape-input",
        {"inputSchema": schema, "steps": [{"id": "s", "type": "state.set", "values": {"a": 1}}]},
    )
    r = await stack.http.post(
        "/v1/runs", headers=admin, json={"definition": "shape-input", "input": {"n": "x"}}
    )
    assert [(i["path"], i["code"]) for i in _items(r, "input_invalid")] == [
        ("/input/n", "input.type")
    ]

    r = await stack.http.post(
        "/v1/expressions/evaluate", headers=admin, json={"expression": "1 +", "envelope": {}}
    )
    assert _items(r, "expression_invalid")[0]["path"] == "/expression"

    r = await stack.http.put(
        "/v1/event-types/shape.bad", headers=admin, json={"schema": {"type": "nonsense"}}
    )
    assert _items(r, "event_type_invalid")[0]["path"].startswith("/schema")

    r = await stack.http.post(
        "/v1/events",
        headers=stack.auth("ingest"),
        json={"name": "shape.unknown", "correlationKey": "k", "payload": {}},
    )
    assert _items(r, "event_invalid") == [
        {
            "path": "/name",
            "code": "event_type_unknown",
            "message": "event type 'shape.unknown' is not registered",
        }
    ]


async def test_the_openapi_document_declares_the_error_item(stack: Stack) -> None:
    doc = (await stack.http.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert schemas["Problem"]["properties"]["errors"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/ErrorItem"
    }
    assert set(schemas["ErrorItem"]["required"]) == {"path", "code", "message"}

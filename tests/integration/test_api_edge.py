"""The API's edge: every error is a problem whose ``status`` is the HTTP status, input no
store can hold is refused up front (NUL, depth, ranges), the OpenAPI document declares it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.deps import SessionDep
from app.main import create_app
from app.pagination import encode_cursor
from projections.models import EventType
from tests.integration.conftest import Stack
from tests.integration.test_human_tasks import APPROVAL, open_task
from tests.problems import assert_problem

SIMPLE = {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}]}
WAITING = {
    "steps": [
        {
            "id": "pay",
            "type": "event.wait",
            "event": "payment.received",
            "correlationKey": "payload.orderId",
            "timeout": "P1D",
        }
    ]
}


def nested(depth: int) -> Any:
    """A JSON value ``depth`` containers deep: [[...[1]...]]."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@asynccontextmanager
async def other_app(
    stack: Stack, **settings: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A second API process on the same Temporal and PostgreSQL, with other settings."""
    app = create_app(
        stack.settings.model_copy(update={"dispatcher_enabled": False, **settings}),
        registry=stack.worker_registry,
        temporal=stack.client,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield app, http


async def test_task_not_open_keeps_status_the_http_status(stack: Stack) -> None:
    await stack.publish("approval", APPROVAL)
    run = await stack.start("approval", {"orderId": "o-1", "manager": "ann"})
    task = await open_task(stack, run["id"])
    url = f"/v1/tasks/{task['id']}/complete"
    r = await stack.http.post(url, headers=stack.auth(), json={"data": {"approved": True}})
    assert r.status_code == 200, r.text
    r = await stack.http.post(url, headers=stack.auth(), json={"data": {"approved": True}})
    body = assert_problem(r, 409, "task_not_open")
    assert body["taskStatus"] == "COMPLETED"


async def test_every_problem_has_the_http_status(stack: Stack) -> None:
    """Drive every kind of error the API produces; each is a well-formed problem."""
    h, http = stack.auth(), stack.http
    await stack.publish("flow", SIMPLE)
    await http.put("/v1/definitions/draft", headers=h, json={"name": "d", "definition": SIMPLE})
    await stack.publish("gone", SIMPLE)
    assert (await http.delete("/v1/definitions/gone", headers=h)).status_code == 204
    key = {"Authorization": "Bearer tf_x"}
    deep = {"definition": "flow", "input": nested(99)}
    reused = {"definition": "flow", "idempotencyKey": "k", "input": {"other": 1}}
    requests: list[tuple[str, str, dict[str, Any], int, str | None]] = [
        ("GET", "/v1/runs", {"headers": {}}, 401, "unauthenticated"),
        ("GET", "/v1/runs", {"headers": key}, 401, "invalid_api_key"),
        ("GET", "/v1/runs", {"headers": stack.auth("ingest")}, 403, "forbidden"),
        ("GET", "/v1/definitions/nope", {}, 404, "definition_not_found"),
        ("GET", "/v1/definitions/flow/versions/9", {}, 404, "version_not_found"),
        ("GET", "/v1/runs/nope", {}, 404, "run_not_found"),
        ("GET", "/v1/runs/nope/waits", {}, 404, "run_not_found"),
        ("GET", "/v1/tasks/nope", {}, 404, "task_not_found"),
        ("GET", "/v1/events/nope", {}, 404, "event_not_found"),
        ("GET", "/v1/event-types/nope", {}, 404, "event_type_not_found"),
        ("GET", "/v1/nowhere", {}, 404, "not_found"),
        ("POST", "/v1/runs", {"json": {"definition": "no"}}, 404, "definition_not_found"),
        ("POST", "/v1/runs", {"json": {"definition": "draft"}}, 404, None),
        ("PATCH", "/v1/definitions/flow", {}, 405, "method_not_allowed"),
        ("DELETE", "/v1/definitions/nope", {}, 404, "definition_not_found"),
        ("GET", "/v1/definitions/gone", {}, 410, "definition_deleted"),
        ("POST", "/v1/runs", {"json": {"definition": "gone"}}, 410, "definition_deleted"),
        ("PUT", "/v1/definitions/x", {"content": b"{"}, 422, None),
        ("PUT", "/v1/definitions/x", {"json": {"name": ""}}, 422, "request_invalid"),
        ("GET", "/v1/runs?cursor=zzz", {}, 422, "cursor_invalid"),
        ("GET", "/v1/runs?limit=0", {}, 422, "request_invalid"),
        ("GET", "/v1/runs?definition=a%00", {}, 422, "nul_character"),
        ("POST", "/v1/runs", {"json": deep}, 422, "json_too_deep"),
        ("POST", "/v1/expressions/evaluate", {"json": {"expression": "("}}, 422, None),
        ("POST", "/v1/definitions/x/validate", {"json": {"definition": {}}}, 422, None),
        ("POST", "/v1/events", {"json": {"name": "unknown.type"}}, 422, None),
        ("PUT", "/v1/definitions/x", {"content": b"x" * (2 << 20)}, 413, None),
        ("POST", "/v1/runs", {"json": {"definition": "flow", "idempotencyKey": "k"}}, 201, None),
        ("POST", "/v1/runs", {"json": reused}, 409, "idempotency_key_reused"),
    ]
    for method, path, kwargs, status, code in requests:
        kwargs = {"headers": h, **kwargs}
        response = await http.request(method, path, **kwargs)
        if status < 400:
            assert response.status_code == status, response.text
        else:
            assert_problem(response, status, code)


async def test_405_names_every_allowed_method(stack: Stack) -> None:
    r = await stack.http.patch("/v1/definitions/flow", headers=stack.auth())
    assert_problem(r, 405)
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "PUT", "DELETE"}
    r = await stack.http.patch("/v1/runs", headers=stack.auth())
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "POST"}


async def test_nul_characters_are_refused_everywhere(stack: Stack) -> None:
    h, http = stack.auth(), stack.http
    await stack.publish("flow", SIMPLE)
    await http.put(
        "/v1/event-types/order.paid", headers=h, json={"correlation": {"paths": ["/payload/id"]}}
    )
    bodies = [
        ("POST", "/v1/runs", {"definition": "flow", "input": {"note": "a\x00b"}}),
        ("POST", "/v1/runs", {"definition": "flow", "input": {"k\x00": 1}}),
        ("POST", "/v1/runs", {"definition": "flow", "idempotencyKey": "\x00"}),
        ("PUT", "/v1/definitions/nul", {"name": "n\x00", "definition": SIMPLE}),
        ("PUT", "/v1/definitions/nul", {"name": "n", "definition": {"steps": [], "\x00": 1}}),
        ("POST", "/v1/definitions/nul/validate", {"definition": {"x": ["\x00"]}}),
        ("PUT", "/v1/event-types/t", {"description": "\x00"}),
        ("POST", "/v1/expressions/evaluate", {"expression": "'\x00'"}),
        ("POST", "/v1/events", {"name": "order.paid", "id": "e\x00", "payload": {}}),
        ("POST", "/v1/events", {"name": "order.paid", "payload": {"id": "a\x00"}}),
        ("POST", "/v1/events:batch", {"events": [{"name": "order.paid", "payload": {"\x00": 1}}]}),
        ("POST", "/v1/tasks/x/complete", {"data": "\x00"}),
    ]
    for method, path, body in bodies:
        r = await http.request(method, path, headers=h, json=body)
        assert_problem(r, 422, "nul_character")
        assert r.json()["errors"][0]["path"].startswith("/"), r.text
    for path in [
        "/v1/runs?definition=%00",
        "/v1/runs?status=RUNNING&parent=x%00y",
        "/v1/tasks?assignee=%00",
        "/v1/events?correlationKey=%00",
        "/v1/definitions?cursor=%00",
        "/v1/runs/%00",
        "/v1/runs/a%00/steps",
        "/v1/definitions/flow/versions/%00",
        "/v1/event-types/a%00",
        "/v1/events/e%00",
        "/v1/tasks/t%00",
    ]:
        assert_problem(await http.get(path, headers=h), 422, "nul_character")
    # Forged cursors carrying NUL never reach PostgreSQL either.
    forged = encode_cursor(["\x00"])
    r = await http.get(f"/v1/definitions?cursor={forged}", headers=h)
    assert_problem(r, 422, "cursor_invalid")
    # Nothing was stored: no run started, no draft, no event.
    assert (await http.get("/v1/runs", headers=h)).json()["items"] == []
    assert_problem(await http.get("/v1/definitions/nul", headers=h), 404)
    assert (await http.get("/v1/events", headers=h)).json()["items"] == []
    # Escaped backslashes before "u0000" are plain text, not a NUL.
    r = await http.post(
        "/v1/runs",
        headers={**h, "Content-Type": "application/json"},
        content=b'{"definition": "flow", "input": {"path": "C:\\\\u0000"}}',
    )
    assert r.status_code == 201, r.text
    assert r.json()["input"] == {"path": "C:\\u0000"}


async def test_lone_surrogates_and_non_finite_numbers_are_refused(stack: Stack) -> None:
    await stack.publish("flow", SIMPLE)
    json_headers = {**stack.auth(), "Content-Type": "application/json"}
    for raw, code in [
        (b'{"definition": "flow", "input": {"s": "\\ud800"}}', "unpaired_surrogate"),
        (b'{"definition": "flow", "input": {"n": NaN}}', "number_not_finite"),
        (b'{"definition": "flow", "input": {"n": -Infinity}}', "number_not_finite"),
        (b'{"definition": "flow", "input": {"n": 1e999}}', "number_not_finite"),
    ]:
        r = await stack.http.post("/v1/runs", headers=json_headers, content=raw)
        assert_problem(r, 422, code)
    r = await stack.http.post(
        "/v1/runs",
        headers=json_headers,
        content=b'{"definition": "flow", "input": {"s": "\\ud83d\\ude00", "n": 1e300}}',
    )
    assert r.status_code == 201, r.text


async def test_one_depth_limit_at_every_entry(stack: Stack) -> None:
    h, http = stack.auth(), stack.http
    limit = stack.settings.max_json_depth
    await stack.publish("flow", SIMPLE)
    await http.put(
        "/v1/event-types/order.paid", headers=h, json={"correlation": {"paths": ["/payload/id"]}}
    )
    for deep in (nested(limit), nested(300), nested(5000)):
        for method, path, body in [
            ("POST", "/v1/runs", {"definition": "flow", "input": deep}),
            ("PUT", "/v1/definitions/deep", {"name": "d", "definition": {"steps": deep}}),
            ("POST", "/v1/definitions/deep/validate", {"definition": {"x": deep}}),
            ("PUT", "/v1/event-types/deep", {"schema": {"default": deep}}),
            ("POST", "/v1/expressions/evaluate", {"expression": "1", "envelope": {"x": deep}}),
            ("POST", "/v1/events", {"name": "order.paid", "payload": {"id": "1", "x": deep}}),
            ("POST", "/v1/events:batch", {"events": [{"name": "order.paid", "payload": deep}]}),
            ("POST", "/v1/tasks/x/complete", {"data": deep}),
        ]:
            r = await http.request(method, path, headers=h, json=body)
            assert_problem(r, 422, "json_too_deep")
    assert_problem(await http.get("/v1/definitions/deep", headers=h), 404)
    assert (await http.get("/v1/definitions", headers=h)).status_code == 200
    assert (await http.get("/v1/events", headers=h)).json()["items"] == []
    # Just under the limit (the body wraps the input in one object): accepted, readable.
    r = await http.post(
        "/v1/runs", headers=h, json={"definition": "flow", "input": nested(limit - 1)}
    )
    assert r.status_code == 201, r.text
    assert (await http.get(f"/v1/runs/{r.json()['id']}", headers=h)).status_code == 200


async def test_integers_beyond_the_columns_are_4xx(stack: Stack) -> None:
    h = stack.auth()
    await stack.publish("flow", SIMPLE)
    for path in ["/v1/definitions/flow/versions/2147483648", "/v1/definitions/flow/versions/0"]:
        assert_problem(await stack.http.get(path, headers=h), 422, "request_invalid")
    for version in (982661278135, 2**31, True, 1.5):
        r = await stack.http.post(
            "/v1/runs", headers=h, json={"definition": "flow", "version": version}
        )
        assert_problem(r, 422, "request_invalid")
    r = await stack.http.get(f"/v1/events?cursor={encode_cursor([2**64])}", headers=h)
    assert_problem(r, 422, "cursor_invalid")
    r = await stack.http.get(f"/v1/runs?cursor={encode_cursor([1, 2])}", headers=h)
    assert_problem(r, 422, "cursor_invalid")
    r = await stack.http.get("/v1/runs?limit=99999999999999999999999", headers=h)
    assert r.status_code == 200


async def test_database_data_errors_are_4xx(stack: Stack) -> None:
    """Whatever still reaches PostgreSQL and is refused as data (SQLSTATE class 22) is a
    422 problem, never a 500: the mapping is checked against the real server."""
    app = create_app(
        stack.settings.model_copy(update={"dispatcher_enabled": False}), temporal=stack.client
    )

    @app.get("/v1/test-only/cast")
    async def cast(session: SessionDep, value: str) -> Any:
        stmt = text("select cast(cast(:v as text) as integer)")  # PostgreSQL refuses it
        return (await session.execute(stmt, {"v": value})).scalar()

    @app.get("/v1/test-only/int32")
    async def int32(session: SessionDep, value: int) -> Any:
        # asyncpg itself refuses to bind it ("value out of int32 range").
        return (await session.execute(text("select cast(:v as integer)"), {"v": value})).scalar()

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        assert (await http.get("/v1/test-only/cast?value=7")).json() == 7
        assert_problem(await http.get("/v1/test-only/cast?value=seven"), 422, "data_invalid")
        assert_problem(await http.get("/v1/test-only/cast?value=99999999999"), 422, "data_invalid")
        assert (await http.get("/v1/test-only/int32?value=7")).json() == 7
        assert_problem(await http.get(f"/v1/test-only/int32?value={2**40}"), 422, "data_invalid")


async def test_empty_query_parameters_mean_absent(stack: Stack) -> None:
    h = stack.auth()
    for path in [
        "/v1/runs?cursor=&limit=&status=&definition=",
        "/v1/definitions?cursor=",
        "/v1/tasks?cursor=&status=",
        "/v1/events?cursor=&status=",
    ]:
        r = await stack.http.get(path, headers=h)
        assert r.status_code == 200, (path, r.text)


async def test_booleans_are_not_durations_or_numbers(stack: Stack) -> None:
    h = stack.auth()
    r = await stack.http.put("/v1/event-types/t.x", headers=h, json={"bufferTtl": False})
    assert_problem(r, 422, "request_invalid")
    r = await stack.http.put("/v1/event-types/t.x", headers=h, json={"bufferTtl": 60})
    assert_problem(r, 422, "request_invalid")
    r = await stack.http.put("/v1/event-types/t.x", headers=h, json={"bufferTtl": "PT5M"})
    assert r.status_code == 201 and r.json()["bufferTtlSeconds"] == 300
    r = await stack.http.post(
        "/v1/expressions/evaluate", headers=h, json={"expression": "$random()", "seed": False}
    )
    assert_problem(r, 422, "request_invalid")
    r = await stack.http.post(
        "/v1/expressions/evaluate", headers=h, json={"expression": "1 + 1", "seed": 3}
    )
    assert r.status_code == 200 and r.json()["result"] == 2


async def test_openapi_declares_problem_responses(stack: Stack) -> None:
    doc = (await stack.http.get("/openapi.json")).json()
    assert "Problem" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in operations.items():
            responses = op["responses"]
            wanted = {"400", "401", "403", "422", "503"}
            if "{" in path:
                wanted.add("404")
            if method in ("post", "put"):
                wanted.add("413")
            assert wanted <= set(responses), (method, path, sorted(responses))
            for status in wanted:
                content = responses[status]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
    assert {"200", "201"} <= set(doc["paths"]["/v1/runs"]["post"]["responses"])
    assert {"200", "202"} <= set(doc["paths"]["/v1/events"]["post"]["responses"])
    assert {"200", "201"} <= set(doc["paths"]["/v1/definitions/{key}"]["put"]["responses"])
    assert "409" in doc["paths"]["/v1/tasks/{task_id}/complete"]["post"]["responses"]


async def test_start_names_a_missing_definition(stack: Stack) -> None:
    h = stack.auth()
    r = await stack.http.post("/v1/runs", headers=h, json={"definition": "never"})
    assert_problem(r, 404, "definition_not_found")
    r = await stack.http.post("/v1/runs", headers=h, json={"definition": "never", "version": 1})
    assert_problem(r, 404, "definition_not_found")
    await stack.http.put("/v1/definitions/drafty", headers=h, json={"name": "d", "definition": {}})
    r = await stack.http.post("/v1/runs", headers=h, json={"definition": "drafty"})
    assert_problem(r, 404, "definition_not_published")
    await stack.publish("flow", SIMPLE)
    r = await stack.http.post("/v1/runs", headers=h, json={"definition": "flow", "version": 2})
    assert_problem(r, 404, "version_not_found")


async def test_a_run_that_exists_is_never_404(stack: Stack) -> None:
    """A run Temporal knows but the projection does not (no worker has picked it up yet)
    answers its sub-resources with empty pages, like GET /v1/runs/{id} answers the run."""
    await stack.publish("waiting", WAITING)
    async with other_app(stack, task_queue=f"idle-{uuid.uuid4()}") as (_, http):
        r = await http.post("/v1/runs", headers=stack.auth(), json={"definition": "waiting"})
        assert r.status_code == 201, r.text
        run = r.json()
        try:
            view = await http.get(f"/v1/runs/{run['id']}", headers=stack.auth())
            assert view.status_code == 200 and view.json()["source"] == "temporal"
            for sub in ("waits", "steps", "invocations"):
                r = await http.get(f"/v1/runs/{run['id']}/{sub}", headers=stack.auth())
                assert r.status_code == 200, (sub, r.text)
                assert r.json()["items"] == []
            r = await http.get(f"/v1/runs/{uuid.uuid4()}/waits", headers=stack.auth())
            assert_problem(r, 404, "run_not_found")
        finally:
            await stack.client.get_workflow_handle(run["workflowId"]).terminate("test over")


async def test_run_input_schemas_do_no_io_and_no_backtracking(stack: Stack) -> None:
    """An inputSchema's remote $ref is never fetched and a catastrophic pattern runs in
    linear time (RE2): starting a run answers a 4xx at once, never a 500 or a hang."""
    h = stack.auth()
    remote = {
        "name": "ref",
        "definition": {**SIMPLE, "inputSchema": {"$ref": "http://127.0.0.1:9/s"}},
    }
    r = await stack.http.put("/v1/definitions/ref", headers=h, json=remote)
    r = await stack.http.post("/v1/definitions/ref/publish", headers=h)
    errors = assert_problem(r, 422, "definition_invalid")["errors"]
    assert [e["path"] for e in errors] == ["/inputSchema/$ref"]  # refused before any run
    await stack.publish("ref", {**SIMPLE, "inputSchema": {"$ref": "#/$defs/none"}})
    r = await stack.http.post("/v1/runs", headers=h, json={"definition": "ref", "input": 1})
    assert_problem(r, 422, "input_schema_unusable")
    schema = {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(b+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    await stack.publish("redos", {**SIMPLE, "inputSchema": schema})
    evil = "a" * 5000 + "!"
    body = {"definition": "redos", "input": {"s": evil, "b" * 5000 + "!": 1}}
    r = await asyncio.wait_for(stack.http.post("/v1/runs", headers=h, json=body), 5)
    errors = assert_problem(r, 422, "input_invalid")["errors"]
    assert {e["code"] for e in errors} == {"input.pattern", "input.additionalProperties"}
    ok = {"definition": "redos", "input": {"s": "aaa", "bb": 2}}
    assert (await stack.http.post("/v1/runs", headers=h, json=ok)).status_code == 201


async def test_unresolvable_schema_refs_are_4xx(stack: Stack) -> None:
    """An event type's schema whose $ref points outside it is refused when stored; one
    stored before that check makes events 422 (nothing fetched), not 500."""
    h = stack.auth()
    schema = {"properties": {"a": {"$ref": "http://127.0.0.1:9/payload.json"}}}
    r = await stack.http.put("/v1/event-types/order.ref", headers=h, json={"schema": schema})
    assert_problem(r, 422, "event_type_invalid")
    assert [e["path"] for e in r.json()["errors"]] == ["/schema/properties/a/$ref"]
    r = await stack.http.put(
        "/v1/event-types/order.ref", headers=h, json={"schema": {"pattern": "(a)\\1"}}
    )
    assert_problem(r, 422, "event_type_invalid")
    async with stack.sessions.begin() as session:
        session.add(
            EventType(
                tenant=stack.tenant, name="order.ref", payload_schema=schema, buffer_ttl_seconds=0
            )
        )
    r = await stack.http.post(
        "/v1/events", headers=h, json={"name": "order.ref", "payload": {"a": 1}}
    )
    assert_problem(r, 422, "schema_unresolvable")

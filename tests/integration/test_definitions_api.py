"""Drafts, validation (every error at once), immutable versions, limits."""

from __future__ import annotations

from tests.integration.conftest import Stack

GOOD = {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}]}
BROKEN = {
    "steps": [
        {"id": "a", "type": "state.set", "values": {"x": {"$expr": "payload.("}}},
        {"id": "a", "type": "action.call", "action": "core.missing"},
        {"id": "c", "type": "control.if", "condition": "vars.x >", "then": []},
    ],
    "inputSchema": {"type": "nonsense"},
}


async def test_validate_lists_every_error_with_paths(stack: Stack) -> None:
    r = await stack.http.put(
        "/v1/definitions/broken",
        headers=stack.auth(),
        json={"name": "Broken", "definition": BROKEN},
    )
    assert r.status_code == 201  # drafts may be invalid
    for path in ["/v1/definitions/broken/validate", "/v1/definitions/broken/publish"]:
        r = await stack.http.post(path, headers=stack.auth())
        assert r.status_code == 422, path
        body = r.json()
        assert body["code"] == "definition_invalid"
        found = {(e["path"], e["code"]) for e in body["errors"]}
        assert found == {
            ("/steps/0/values/x", "S0203"),
            ("/steps/1/id", "step.duplicate_id"),
            ("/steps/1/action", "action.unknown"),
            ("/steps/2/condition", "S0207"),
            ("/inputSchema/type", "input_schema.invalid"),
        }
        assert all(e.get("hint") for e in body["errors"])
    assert (await stack.http.get("/v1/definitions/broken", headers=stack.auth())).json()[
        "latestVersion"
    ] is None


async def test_schema_errors_name_the_step(stack: Stack) -> None:
    bad = {
        "steps": [
            GOOD["steps"][0],
            {"id": "b", "type": "state.sett"},
            {"id": "c", "type": "action.call"},
        ]
    }
    r = await stack.http.post(
        "/v1/definitions/x/validate", headers=stack.auth(), json={"definition": bad}
    )
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {"/steps/1", "/steps/2/action"}


async def test_validate_inline_body(stack: Stack) -> None:
    r = await stack.http.post(
        "/v1/definitions/x/validate", headers=stack.auth(), json={"definition": GOOD}
    )
    assert r.status_code == 200 and r.json() == {"valid": True, "errors": [], "warnings": []}


async def test_publish_is_immutable_and_content_addressed(stack: Stack) -> None:
    assert await stack.publish("flow", GOOD) == 1
    assert await stack.publish("flow", GOOD) == 1  # same content, same version
    r = await stack.http.post("/v1/definitions/flow/publish", headers=stack.auth())
    assert r.status_code == 200
    changed = {"steps": [{"id": "a", "type": "state.set", "values": {"x": 2}}]}
    assert await stack.publish("flow", changed) == 2
    v1 = (await stack.http.get("/v1/definitions/flow/versions/1", headers=stack.auth())).json()
    assert v1["definition"] == GOOD and v1["version"] == 1
    versions = (await stack.http.get("/v1/definitions/flow/versions", headers=stack.auth())).json()
    assert [v["version"] for v in versions] == [2, 1]
    flow = (await stack.http.get("/v1/definitions/flow", headers=stack.auth())).json()
    assert flow["latestVersion"] == 2 and flow["definition"] == changed
    r = await stack.http.get("/v1/definitions/flow/versions/3", headers=stack.auth())
    assert r.status_code == 404 and r.json()["code"] == "version_not_found"
    # A run pinned to v1 runs v1 even though v2 is the latest.
    run = await stack.start("flow", version=1)
    assert (await stack.result(run))["output"] == {"x": 1}
    run = await stack.start("flow")
    assert run["version"] == 2
    assert (await stack.result(run))["output"] == {"x": 2}


async def test_list_definitions_pages(stack: Stack) -> None:
    for key in ["c", "a", "b"]:
        r = await stack.http.put(
            f"/v1/definitions/{key}", headers=stack.auth(), json={"name": key, "definition": GOOD}
        )
        assert r.status_code == 201
    page = (await stack.http.get("/v1/definitions?limit=2", headers=stack.auth())).json()
    assert [d["key"] for d in page["items"]] == ["a", "b"]
    rest = (
        await stack.http.get(
            f"/v1/definitions?limit=2&cursor={page['nextCursor']}", headers=stack.auth()
        )
    ).json()
    assert [d["key"] for d in rest["items"]] == ["c"] and rest["nextCursor"] is None
    r = await stack.http.get("/v1/definitions?cursor=garbage", headers=stack.auth())
    assert r.status_code == 422 and r.json()["code"] == "cursor_invalid"


async def test_bad_requests_are_problems(stack: Stack) -> None:
    r = await stack.http.put(
        "/v1/definitions/Bad Key!", headers=stack.auth(), json={"name": "x", "definition": GOOD}
    )
    assert r.status_code == 422 and r.json()["code"] == "request_invalid"
    r = await stack.http.put(
        "/v1/definitions/x",
        headers=stack.auth(),
        json={"name": "x", "definition": GOOD, "extra": 1},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "/extra"
    r = await stack.http.post("/v1/runs", headers=stack.auth(), json={"definition": "nothing"})
    assert r.status_code == 404 and r.json()["code"] == "definition_not_found"
    r = await stack.http.get("/v1/runs/does-not-exist", headers=stack.auth())
    assert r.status_code == 404 and r.json()["code"] == "run_not_found"


async def test_body_over_limit_is_413(stack: Stack) -> None:
    big = {
        "name": "x",
        "definition": {"steps": [], "pad": "x" * (stack.settings.max_request_bytes + 1)},
    }
    r = await stack.http.put("/v1/definitions/x", headers=stack.auth(), json=big)
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: counted while streaming
        for _ in range(stack.settings.max_request_bytes // 65536 + 2):
            yield b"x" * 65536

    r = await stack.http.put("/v1/definitions/x", headers=stack.auth(), content=chunks())
    assert r.status_code == 413
    assert (await stack.http.get("/v1/definitions/x", headers=stack.auth())).status_code == 404


async def test_definition_over_size_limit_is_422(stack: Stack) -> None:
    pad = "x" * (stack.settings.max_definition_bytes + 10)
    r = await stack.http.put(
        "/v1/definitions/x",
        headers=stack.auth(),
        json={
            "name": "x",
            "definition": {"steps": [{"id": "a", "type": "state.set", "values": {"p": pad}}]},
        },
    )
    assert r.status_code == 422 and r.json()["code"] == "definition_too_large"


async def test_actions_listed(stack: Stack) -> None:
    actions = (await stack.http.get("/v1/actions", headers=stack.auth())).json()
    names = [a["name"] for a in actions]
    assert "core.noop" in names and "core.log" in names
    log = next(a for a in actions if a["name"] == "core.log")
    assert "message" in log["inputSchema"]["properties"]


async def test_schema_and_semantic_errors_come_together_and_block_publish(stack: Stack) -> None:
    body = {
        "steps": [
            {"id": "a", "type": "action.call", "action": "core.nothing"},
            {"id": "b", "type": "transform.assign", "assign": {"x": "paylod.x"}},
            {"id": "c", "type": "state.set", "values": {"y": 1}, "colour": "red"},
        ]
    }
    r = await stack.http.put(
        "/v1/definitions/together", headers=stack.auth(), json={"name": "t", "definition": body}
    )
    assert r.status_code == 201
    for path in ["/v1/definitions/together/validate", "/v1/definitions/together/publish"]:
        r = await stack.http.post(path, headers=stack.auth())
        assert r.status_code == 422, path
        assert {(e["path"], e["code"]) for e in r.json()["errors"]} == {
            ("/steps/0/action", "action.unknown"),
            ("/steps/1/assign/x", "expression.unknown_root"),
            ("/steps/2/colour", "schema.extra_forbidden"),
        }
    r = await stack.http.get("/v1/definitions/together", headers=stack.auth())
    assert r.json()["latestVersion"] is None


async def test_expression_errors_have_one_shape_at_publish_and_in_evaluate(stack: Stack) -> None:
    """The engine's code is the entry's code (not inside message), with the position;
    regex errors included."""
    for expr, code, position in [
        ("payload.(", "S0203", 9),
        ("$contains(payload.s, /(?=a)b/)", "TF1201", 29),
        ("paylod.x", "expression.unknown_root", 6),
    ]:
        definition = {"steps": [{"id": "a", "type": "transform.assign", "assign": {"x": expr}}]}
        r = await stack.http.post(
            "/v1/definitions/shape/validate",
            headers=stack.auth(),
            json={"definition": definition},
        )
        assert r.status_code == 422
        (published,) = r.json()["errors"]
        r = await stack.http.post(
            "/v1/expressions/evaluate", headers=stack.auth(), json={"expression": expr}
        )
        assert r.status_code == 422
        (evaluated,) = r.json()["errors"]
        assert published["code"] == evaluated["code"] == code, expr
        assert published["position"] == evaluated["position"] == position, expr
        assert published["path"] == "/steps/0/assign/x" and evaluated["path"] == "/expression"
        assert set(published) == set(evaluated), expr
        assert code not in published["message"], expr

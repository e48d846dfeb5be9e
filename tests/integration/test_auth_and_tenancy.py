"""Every endpoint needs a key with the right role; tenants never see each other."""

from __future__ import annotations

from tests.integration.conftest import Stack, make_keys

SIMPLE = {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}]}


async def test_no_key_is_401_problem(stack: Stack) -> None:
    for method, path in [
        ("GET", "/v1/definitions"),
        ("GET", "/v1/runs"),
        ("POST", "/v1/runs"),
        ("PUT", "/v1/definitions/x"),
    ]:
        r = await stack.http.request(method, path, json={})
        assert r.status_code == 401, (method, path)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "unauthenticated"
        assert r.headers["www-authenticate"] == "Bearer"
    r = await stack.http.get("/v1/runs", headers={"Authorization": "Bearer tf_nope"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
    r = await stack.http.get("/v1/runs", headers={"X-API-Key": stack.keys["operator"]})
    assert r.status_code == 200
    assert (await stack.http.get("/healthz")).status_code == 200


async def test_wrong_role_is_403(stack: Stack) -> None:
    r = await stack.http.put(
        "/v1/definitions/x",
        headers=stack.auth("operator"),
        json={"name": "x", "definition": SIMPLE},
    )
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    await stack.publish("x", SIMPLE, role="publisher")
    r = await stack.http.post("/v1/runs", headers=stack.auth("publisher"), json={"definition": "x"})
    assert r.status_code == 403
    r = await stack.http.post("/v1/runs", headers=stack.auth("ingest"), json={"definition": "x"})
    assert r.status_code == 403
    r = await stack.http.get("/v1/definitions", headers=stack.auth("ingest"))
    assert r.status_code == 403
    r = await stack.http.post("/v1/runs", headers=stack.auth("operator"), json={"definition": "x"})
    assert r.status_code == 201


async def test_other_tenant_sees_404(stack: Stack) -> None:
    await stack.publish("secret", SIMPLE)
    run = await stack.start("secret")
    await stack.result(run)
    other = await make_keys(stack.sessions, "other-" + stack.tenant, stack.settings.api_key_pepper)
    h = {"Authorization": f"Bearer {other['admin']}"}
    for path in [
        "/v1/definitions/secret",
        "/v1/definitions/secret/versions/1",
        "/v1/definitions/secret/versions",
        f"/v1/runs/{run['id']}",
        f"/v1/runs/{run['id']}/steps",
    ]:
        r = await stack.http.get(path, headers=h)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json"
    assert (await stack.http.get("/v1/definitions", headers=h)).json()["items"] == []
    assert (await stack.http.get("/v1/runs", headers=h)).json()["items"] == []
    r = await stack.http.post("/v1/runs", headers=h, json={"definition": "secret"})
    assert r.status_code == 404
    r = await stack.http.post("/v1/definitions/secret/publish", headers=h)
    assert r.status_code == 404
    # Same key in the other tenant is a separate definition.
    r = await stack.http.put(
        "/v1/definitions/secret", headers=h, json={"name": "mine", "definition": SIMPLE}
    )
    assert r.status_code == 201
    mine = (await stack.http.get("/v1/definitions/secret", headers=stack.auth())).json()
    assert mine["name"] == "secret"

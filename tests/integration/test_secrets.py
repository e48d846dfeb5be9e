"""The secret store API and run-time resolution of ``{"$secret": name}`` references."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowFailureError

from activities.registry import ActionContext
from launcher.secrets_cli import rotate_all
from projections import secrets as store
from projections.models import SecretRow, StepRow
from tempoflow.keyring import Keyring, generate_key
from tests.actions import Anything
from tests.integration.conftest import Stack

VALUE = "sk_live_7f3a9c1e5b"


async def put(stack: Stack, name: str, value: str, role: str = "admin") -> Any:
    return await stack.http.put(
        f"/v1/secrets/{name}", headers=stack.auth(role), json={"value": value}
    )


def capture(stack: Stack) -> dict[str, list[Any]]:
    """Register ``test.capture`` on the stack's worker: records the input its handler got
    and echoes it."""
    seen: dict[str, list[Any]] = {}

    @stack.worker_registry.action("test.capture", input_model=Anything, output_model=Anything)
    async def handler(data: Anything, ctx: ActionContext) -> Anything:
        seen.setdefault(ctx.run_id, []).append(data.model_extra)
        ctx.logger.info("calling with %s", data.model_extra)
        return Anything(**(data.model_extra or {}))

    return seen


async def test_admin_writes_secrets_nobody_reads_values(stack: Stack, other_tenant: Any) -> None:
    r = await put(stack, "billing-api", VALUE)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"name", "createdAt", "updatedAt"} and VALUE not in r.text
    r = await put(stack, "billing-api", VALUE + "-2")
    assert r.status_code == 200 and r.json()["createdAt"] <= r.json()["updatedAt"]
    for role in ("publisher", "operator", "ingest"):
        r = await put(stack, "billing-api", "x" * 10, role)
        assert r.status_code == 403, role
    r = await stack.http.get("/v1/secrets", headers=stack.auth("publisher"))
    assert r.status_code == 200 and [i["name"] for i in r.json()["items"]] == ["billing-api"]
    assert VALUE not in r.text
    r = await stack.http.get("/v1/secrets", headers=stack.auth("operator"))
    assert r.status_code == 403
    # Write-only: there is no way to read one back.
    r = await stack.http.get("/v1/secrets/billing-api", headers=stack.auth())
    assert r.status_code in (404, 405)
    # Other tenants neither see nor delete it, and their own namesake is separate.
    r = await stack.http.get("/v1/secrets", headers=other_tenant)
    assert r.json()["items"] == []
    r = await stack.http.delete("/v1/secrets/billing-api", headers=other_tenant)
    assert r.status_code == 404 and r.json()["code"] == "secret_not_found"
    # Stored encrypted.
    async with stack.sessions() as session:
        row = (
            await session.execute(select(SecretRow).where(SecretRow.tenant == stack.tenant))
        ).scalar_one()
    assert VALUE.encode() not in row.ciphertext and row.key_id == stack.settings.keyring.primary_id
    # Bad input.
    r = await put(stack, "bad name!", VALUE)
    assert r.status_code == 422
    r = await put(stack, "short", "abc")
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/value"
    assert "abc" not in r.text
    r = await stack.http.put(
        "/v1/secrets/x1", headers=stack.auth(), json={"value": VALUE, "extra": 1}
    )
    assert r.status_code == 422
    r = await stack.http.delete("/v1/secrets/billing-api", headers=stack.auth("publisher"))
    assert r.status_code == 403
    r = await stack.http.delete("/v1/secrets/billing-api", headers=stack.auth())
    assert r.status_code == 204
    r = await stack.http.delete("/v1/secrets/billing-api", headers=stack.auth())
    assert r.status_code == 404


async def test_run_resolves_references_in_the_activity_only(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = capture(stack)
    assert (await put(stack, "api", VALUE)).status_code == 201
    await stack.publish(
        "uses-secret",
        {
            "steps": [
                {
                    "id": "call",
                    "type": "action.call",
                    "action": "test.capture",
                    "input": {
                        "auth": {"header": {"$secret": "api"}},
                        "list": [{"$secret": "api"}, "plain"],
                        "n": {"$expr": "payload.n"},
                    },
                    "output": "result",
                }
            ]
        },
    )
    run = await stack.start("uses-secret", {"n": 3})
    result = await asyncio.wait_for(stack.result(run), 30)
    # The handler got the value; nothing after it did.
    assert seen[run["id"]] == [{"auth": {"header": VALUE}, "list": [VALUE, "plain"], "n": 3}]
    assert result["output"]["result"] == {
        "auth": {"header": "[secret:api]"},
        "list": ["[secret:api]", "plain"],
        "n": 3,
    }
    # The projected step input keeps the reference.
    async with stack.sessions() as session:
        step = (
            await session.execute(select(StepRow).where(StepRow.run_id == run["id"]))
        ).scalar_one()
    assert step.input["auth"] == {"header": {"$secret": "api"}}
    assert step.output["auth"] == {"header": "[secret:api]"}
    assert VALUE not in caplog.text and "calling with" in caplog.text


async def test_unknown_secret_fails_the_step_catchably_without_running_it(stack: Stack) -> None:
    seen = capture(stack)
    step = {
        "id": "call",
        "type": "action.call",
        "action": "test.capture",
        "input": {"k": {"$secret": "nope"}, "j": {"$secret": "also-missing"}},
    }
    r = await stack.http.put(
        "/v1/definitions/missing",
        headers=stack.auth(),
        json={"name": "m", "definition": {"steps": [step]}},
    )
    r = await stack.http.post("/v1/definitions/missing/publish", headers=stack.auth())
    assert r.status_code == 201, r.text
    warnings = r.json()["warnings"]
    assert sorted((w["code"], w["path"]) for w in warnings) == [
        ("secret.unknown", "/steps/0/input/j"),
        ("secret.unknown", "/steps/0/input/k"),
    ]
    run = await stack.start("missing")
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(stack.result(run), 30)
    view = await stack.run_view(run["id"])
    assert view["error"]["type"] == "SecretNotFound"
    assert "'also-missing'" in view["error"]["message"] and "'nope'" in view["error"]["message"]
    assert run["id"] not in seen
    [attempt_step] = await stack.steps(run["id"])
    assert attempt_step["attempt"] == 1  # not retried

    await stack.publish(
        "missing-caught",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "catchOn": ["SecretNotFound"],
                    "try": [step],
                    "catch": [
                        {"id": "c", "type": "transform.assign", "assign": {"e": "error.type"}}
                    ],
                }
            ]
        },
    )
    caught = await asyncio.wait_for(stack.result(await stack.start("missing-caught")), 30)
    assert caught["output"] == {"e": "SecretNotFound"}
    # Once the secrets exist, validation no longer warns.
    await put(stack, "nope", VALUE)
    await put(stack, "also-missing", VALUE)
    r = await stack.http.post(
        "/v1/definitions/missing/validate",
        headers=stack.auth("publisher"),
        json={"definition": {"steps": [step]}},
    )
    assert r.status_code == 200 and r.json()["warnings"] == []


async def test_rotation_reencrypts_under_the_first_key(stack: Stack) -> None:
    dev = stack.settings.keyring
    for name in ("r1", "r2"):
        assert (await put(stack, name, VALUE + name)).status_code == 201
    new = generate_key()
    rotated = Keyring.from_text(f"{new},{stack.settings.secrets_key.get_secret_value()}")
    assert await rotate_all(stack.sessions, rotated) >= 2
    only_new = Keyring.from_text(new)
    async with stack.sessions() as session:
        values = await store.reveal(session, only_new, stack.tenant, ["r1", "r2"])
        kids = set(
            (
                await session.execute(
                    select(SecretRow.key_id).where(SecretRow.tenant == stack.tenant)
                )
            ).scalars()
        )
    assert values == {"r1": VALUE + "r1", "r2": VALUE + "r2"}
    assert kids == {only_new.primary_id} != {dev.primary_id}
    assert await rotate_all(stack.sessions, rotated) == 0
    # Put the rows back under the stack's key for the other tests of this database.
    back = Keyring.from_text(f"{stack.settings.secrets_key.get_secret_value()},{new}")
    await rotate_all(stack.sessions, back)


async def test_references_produced_from_data_are_not_resolved(stack: Stack) -> None:
    """A run's input (or any data an expression reads) cannot choose a secret: only
    references written in the definition resolve."""
    seen = capture(stack)
    await put(stack, "prod-db", VALUE)
    await stack.publish(
        "injectable",
        {
            "steps": [
                {
                    "id": "call",
                    "type": "action.call",
                    "action": "test.capture",
                    "input": {"note": {"$expr": "payload.note"}},
                }
            ]
        },
    )
    run = await stack.start("injectable", {"note": {"$secret": "prod-db"}})
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(stack.result(run), 30)
    view = await stack.run_view(run["id"])
    assert view["error"]["type"] == "ActionInputError"
    assert "comes from data" in view["error"]["message"]
    assert run["id"] not in seen and VALUE not in str(view)


async def test_secrets_per_tenant_are_bounded(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.routers import secrets as router

    monkeypatch.setattr(router, "MAX_SECRETS_PER_TENANT", 2)
    assert (await put(stack, "a1", VALUE)).status_code == 201
    assert (await put(stack, "a2", VALUE)).status_code == 201
    r = await put(stack, "a3", VALUE)
    assert r.status_code == 409 and r.json()["code"] == "secret_limit_reached"
    assert (await put(stack, "a2", VALUE + "x")).status_code == 200  # replacing is fine

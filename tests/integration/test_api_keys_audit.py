"""API keys managed by admins (API and CLI), and the audit log of who did what."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from tests.integration.conftest import Stack

REPO = Path(__file__).resolve().parents[2]


async def _create(stack: Stack, **body: object) -> dict[str, object]:
    r = await stack.http.post("/v1/api-keys", headers=stack.auth(), json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_admins_create_list_and_revoke_keys(stack: Stack) -> None:
    created = await _create(stack, name="ci", roles=["operator"])
    key = str(created["key"])
    assert key.startswith("tf_") and created["roles"] == ["operator"]
    bearer = {"Authorization": f"Bearer {key}"}
    assert (await stack.http.get("/v1/runs", headers=bearer)).status_code == 200
    assert (await stack.http.get("/v1/api-keys", headers=bearer)).status_code == 403

    listed = (await stack.http.get("/v1/api-keys", headers=stack.auth())).json()["items"]
    mine = [k for k in listed if k["id"] == created["id"]]
    assert mine and mine[0]["prefix"] == key[:9] and "key" not in mine[0]
    assert key not in json.dumps(listed) and len(listed) == 5  # the four of the stack too

    fresh = await _create(stack, name="never used", roles=["ingest"])
    r = await stack.http.delete(f"/v1/api-keys/{fresh['id']}", headers=stack.auth())
    assert r.status_code == 204, r.text
    again = await stack.http.delete(f"/v1/api-keys/{fresh['id']}", headers=stack.auth())
    assert again.status_code == 204  # revoking twice is harmless
    refused = await stack.http.get(
        "/v1/events/x", headers={"Authorization": f"Bearer {fresh['key']}"}
    )
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_api_key"
    revoked = [
        k
        for k in (await stack.http.get("/v1/api-keys", headers=stack.auth())).json()["items"]
        if k["id"] == fresh["id"]
    ]
    assert revoked[0]["revokedAt"] is not None

    missing = await stack.http.delete("/v1/api-keys/nope", headers=stack.auth())
    assert missing.status_code == 404 and missing.json()["code"] == "api_key_not_found"


async def test_a_key_stops_working_when_it_expires(stack: Stack) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await stack.http.post(
        "/v1/api-keys",
        headers=stack.auth(),
        json={"name": "x", "roles": ["operator"], "expiresAt": past},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/expiresAt", r.text

    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = await _create(stack, name="temp", roles=["operator"], expiresAt=soon)
    assert created["expiresAt"] is not None
    async with stack.sessions.begin() as session:  # a day later
        await session.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": created["id"]},
        )
    bearer = {"Authorization": f"Bearer {created['key']}"}
    assert (await stack.http.get("/v1/runs", headers=bearer)).status_code == 401


async def test_the_audit_log_records_who_did_what(
    stack: Stack, other_tenant: dict[str, str]
) -> None:
    created = await _create(stack, name="audited", roles=["publisher"])
    await stack.http.delete(f"/v1/api-keys/{created['id']}", headers=stack.auth())
    await stack.publish(
        "audited", {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}]}
    )
    await stack.publish(
        "audited", {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}]}
    )
    await stack.http.post("/v1/definitions/audited/pause", headers=stack.auth())
    await stack.http.post("/v1/definitions/audited/pause", headers=stack.auth())  # no change

    r = await stack.http.get("/v1/audit", headers=stack.auth())
    assert r.status_code == 200, r.text
    entries = r.json()["items"]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("definition.pause", "audited"),
        ("definition.publish", "audited"),  # once: the repeat published nothing
        ("api_key.revoke", created["id"]),
        ("api_key.create", created["id"]),
    ]
    admin_id = entries[0]["actor"]
    assert all(e["actor"] == admin_id for e in entries)
    assert entries[1]["details"] == {"version": 1}

    page = await stack.http.get("/v1/audit?limit=3", headers=stack.auth())
    rest = await stack.http.get(
        f"/v1/audit?cursor={page.json()['nextCursor']}", headers=stack.auth()
    )
    assert len(page.json()["items"]) == 3 and len(rest.json()["items"]) == 1
    only = await stack.http.get("/v1/audit?action=api_key.create", headers=stack.auth())
    assert [e["target"] for e in only.json()["items"]] == [created["id"]]

    assert (await stack.http.get("/v1/audit", headers=stack.auth("operator"))).status_code == 403
    assert (await stack.http.get("/v1/audit", headers=other_tenant)).json()["items"] == []


def _cli(args: list[str], database_url: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "launcher.cli", "apikey", *args],
        cwd=REPO,
        env={**clean, "TEMPOFLOW_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_cli_lists_rotates_and_revokes_keys(stack: Stack, database_url: str) -> None:
    tenant = "cli-" + stack.tenant

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _cli([*args, "--tenant", tenant], database_url)

    made = await asyncio.to_thread(run, "create", "--role", "operator", "--name", "deploy")
    assert made.returncode == 0, made.stderr
    old_key = made.stdout.strip()
    listed = await asyncio.to_thread(run, "list", "--json")
    [entry] = json.loads(listed.stdout)
    assert entry["name"] == "deploy" and entry["revokedAt"] is None

    rotated = await asyncio.to_thread(run, "rotate", entry["id"])
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip()
    assert new_key.startswith("tf_") and new_key != old_key
    for key, status in ((old_key, 401), (new_key, 200)):
        r = await stack.http.get("/v1/runs", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == status, (key[:9], r.text)

    table = await asyncio.to_thread(run, "list")
    assert "revoked" in table.stdout and "live" in table.stdout
    again = await asyncio.to_thread(run, "rotate", entry["id"])
    assert again.returncode == 2 and "no live API key" in again.stderr
    [live] = [
        k
        for k in json.loads((await asyncio.to_thread(run, "list", "--json")).stdout)
        if not k["revokedAt"]
    ]
    assert (await asyncio.to_thread(run, "revoke", live["id"])).returncode == 0
    async with stack.sessions() as session:
        actions = (
            (
                await session.execute(
                    text("SELECT action FROM audit_log WHERE tenant = :t ORDER BY id"),
                    {"t": tenant},
                )
            )
            .scalars()
            .all()
        )
    assert actions == ["api_key.create", "api_key.rotate", "api_key.create", "api_key.revoke"]


async def test_secret_changes_are_audited_without_their_values(stack: Stack) -> None:
    url = "/v1/secrets/audited-token"
    assert (
        await stack.http.put(url, headers=stack.auth(), json={"value": "v-1-xyz"})
    ).status_code == 201
    assert (
        await stack.http.put(url, headers=stack.auth(), json={"value": "v-2-xyz"})
    ).status_code == 200
    assert (await stack.http.delete(url, headers=stack.auth())).status_code == 204
    r = await stack.http.get("/v1/audit?target=audited-token", headers=stack.auth())
    entries = r.json()["items"]
    assert [e["action"] for e in entries] == ["secret.delete", "secret.update", "secret.create"]
    assert "v-1-xyz" not in r.text and "v-2-xyz" not in r.text


async def test_times_must_be_rfc3339_strings_not_numbers(stack: Stack) -> None:
    """Found by the API fuzzer: pydantic reads a number (also as a string) as seconds
    since 1970, so a malformed time was accepted as a date in 1969."""
    for query in ("until=-58800", "since=1700000000"):
        r = await stack.http.get(f"/v1/audit?{query}", headers=stack.auth())
        assert r.status_code == 422, (query, r.text)
    r = await stack.http.get("/v1/audit?since=2026-01-01T00:00:00Z", headers=stack.auth())
    assert r.status_code == 200, r.text
    bulk = {"filter": {"definition": "x"}, "dryRun": 0}
    r = await stack.http.post("/v1/runs:terminate", headers=stack.auth(), json=bulk)
    assert r.status_code == 422, r.text  # 0 is not false: a typo must not terminate runs
    stamp = {"filter": {"startedAfter": 1700000000}, "dryRun": True}
    r = await stack.http.post("/v1/runs:cancel", headers=stack.auth(), json=stamp)
    assert r.status_code == 422, r.text

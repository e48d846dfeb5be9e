"""Inbound webhooks on the real stack: only genuine calls start runs, exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from standardwebhooks import Webhook

from projections.models import Event
from tempoflow.hooks import hook_event_name
from tests.integration.conftest import Stack, until

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROTATED = "whsec_" + "bmV3LXNlY3JldC1hZnRlci1yb3RhdGlvbg=="
GH_SECRET = "github-hook-secret"

ON_HOOK = {
    "inputSchema": {"type": "object", "required": ["number"]},
    "triggers": [
        {
            "name": "payments",
            "webhook": {
                "signature": "standard",
                "secrets": [{"$secret": "hook-new"}, {"$secret": "hook-old"}],
                "tolerance": "PT5M",
                "input": "{'number': body.number, 'kind': body.kind, 'via': headers.`x-via`}",
            },
        },
        {
            "name": "github",
            "webhook": {"signature": "github", "secrets": [{"$secret": "gh-secret"}]},
        },
    ],
    "steps": [{"id": "t", "type": "transform.assign", "assign": {"n": "payload.number"}}],
}


async def put_secret(stack: Stack, name: str, value: str) -> None:
    r = await stack.http.put(f"/v1/secrets/{name}", headers=stack.auth(), json={"value": value})
    assert r.status_code in (200, 201), r.text


async def hook_ids(stack: Stack, key: str) -> dict[str, str]:
    r = await stack.http.get(f"/v1/definitions/{key}/hooks", headers=stack.auth("publisher"))
    assert r.status_code == 200, r.text
    return {h["trigger"]: h["hookId"] for h in r.json()["items"]}


async def inbox_rows(stack: Stack, hook_id: str) -> int:
    async with stack.sessions() as session:
        stmt = select(func.count()).where(
            Event.tenant == stack.tenant, Event.name == hook_event_name(hook_id)
        )
        return int((await session.execute(stmt)).scalar_one())


async def run_count(stack: Stack, key: str) -> int:
    r = await stack.http.get(f"/v1/runs?definition={key}", headers=stack.auth())
    return len(r.json()["items"])


def signed(
    body: bytes, msg_id: str, secret: str = SECRET, at: datetime | None = None
) -> dict[str, str]:
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def github_signed(body: bytes, delivery: str, secret: str = GH_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-hub-signature-256": f"sha256={digest}",
        "x-github-delivery": delivery,
        "x-github-event": "push",
    }


async def setup(stack: Stack, key: str) -> dict[str, str]:
    await put_secret(stack, "hook-new", SECRET)
    await put_secret(stack, "hook-old", ROTATED)
    await put_secret(stack, "gh-secret", GH_SECRET)
    await stack.publish(key, ON_HOOK)
    return await hook_ids(stack, key)


async def test_genuine_call_starts_one_run_and_a_replay_starts_nothing(stack: Stack) -> None:
    ids = await setup(stack, "on-hook")
    hook = ids["payments"]
    body = json.dumps({"number": 42, "kind": "charge", "extra": "x"}).encode()
    headers = signed(body, "msg_1") | {"x-via": "psp"}
    r = await stack.http.post(f"/v1/hooks/{hook}", content=body, headers=headers)  # no API key
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["duplicate"] is False and answer["deliveryId"] == "msg_1"
    run_id = answer["runId"]
    assert await inbox_rows(stack, hook) == 1  # durable before the 202

    # The run starts from the inbox with the mapped body as its input.
    async def view() -> dict[str, Any] | None:
        r = await stack.http.get(f"/v1/runs/{run_id}", headers=stack.auth())
        return r.json() if r.status_code == 200 and r.json()["status"] == "SUCCEEDED" else None

    done = await until(view)
    assert done["definition"] == "on-hook"
    assert (await stack.run_view(run_id))["input"] == {"number": 42, "kind": "charge", "via": "psp"}

    # The same delivery again (a sender retrying): the first answer, nothing new.
    again = await stack.http.post(f"/v1/hooks/{hook}", content=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["runId"] == run_id and again.json()["duplicate"] is True
    assert again.json()["receivedAt"] == answer["receivedAt"]
    # Even re-signed later with the rotated secret: still the same delivery.
    resigned = signed(body, "msg_1", secret=ROTATED) | {"x-via": "psp"}
    r = await stack.http.post(f"/v1/hooks/{hook}", content=body, headers=resigned)
    assert r.status_code == 200 and r.json()["runId"] == run_id
    await asyncio.sleep(1.0)  # give a wrongly started second run time to appear
    assert await inbox_rows(stack, hook) == 1
    assert await run_count(stack, "on-hook") == 1

    # A new delivery signed with the old (rotated) secret is genuine: a second run.
    body2 = json.dumps({"number": 43}).encode()
    r = await stack.http.post(
        f"/v1/hooks/{hook}", content=body2, headers=signed(body2, "msg_2", secret=ROTATED)
    )
    assert r.status_code == 202 and r.json()["runId"] != run_id
    await until(lambda: _count_is(stack, "on-hook", 2))

    # The same delivery sent five times at once: one is accepted, all name its run.
    body3 = json.dumps({"number": 44}).encode()
    headers3 = signed(body3, "msg_3")
    answers = await asyncio.gather(
        *(stack.http.post(f"/v1/hooks/{hook}", content=body3, headers=headers3) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 202]
    assert len({a.json()["runId"] for a in answers}) == 1
    await until(lambda: _count_is(stack, "on-hook", 3))
    await asyncio.sleep(1.0)
    assert await inbox_rows(stack, hook) == 3 and await run_count(stack, "on-hook") == 3


async def _count_is(stack: Stack, key: str, n: int) -> bool:
    return await run_count(stack, key) == n


async def test_refused_calls_store_and_start_nothing(stack: Stack) -> None:
    ids = await setup(stack, "on-hook-bad")
    hook, gh = ids["payments"], ids["github"]
    body = json.dumps({"number": 1}).encode()
    now = datetime.now(UTC)
    cases: list[tuple[str, bytes, dict[str, str]]] = [
        ("tampered", json.dumps({"number": 2}).encode(), signed(body, "b1")),
        ("wrong secret", body, signed(body, "b2", secret="whsec_" + "d3JvbmctdGhpbmc=")),
        ("six minutes old", body, signed(body, "b3", at=now - timedelta(minutes=6))),
        ("six minutes ahead", body, signed(body, "b4", at=now + timedelta(minutes=6))),
        ("no headers", body, {"content-type": "application/json"}),
        (
            "no signature",
            body,
            {k: v for k, v in signed(body, "b5").items() if k != "webhook-signature"},
        ),
    ]
    for label, sent, headers in cases:
        r = await stack.http.post(f"/v1/hooks/{hook}", content=sent, headers=headers)
        assert r.status_code == 401, (label, r.text)
        assert r.json()["code"] == "hook_signature_invalid", label
        assert r.headers["content-type"].startswith("application/problem+json")
    gh_cases = [
        ("tampered", body + b" ", github_signed(body, "g1")),
        ("wrong secret", body, github_signed(body, "g2", secret="nope")),
        (
            "no delivery",
            body,
            {k: v for k, v in github_signed(body, "g3").items() if k != "x-github-delivery"},
        ),
        ("no signature", body, {"x-github-delivery": "g4"}),
        ("standard headers on a github hook", body, signed(body, "g5")),
    ]
    for label, sent, headers in gh_cases:
        r = await stack.http.post(f"/v1/hooks/{gh}", content=sent, headers=headers)
        assert r.status_code == 401, (label, r.text)
    # Oversized (over TEMPOFLOW_MAX_EVENT_BYTES, under the request limit), even signed.
    big = json.dumps({"number": 1, "pad": "x" * (stack.settings.max_event_bytes + 10)}).encode()
    r = await stack.http.post(f"/v1/hooks/{hook}", content=big, headers=signed(big, "b6"))
    assert r.status_code == 413 and r.json()["code"] == "hook_body_too_large", r.text
    # Genuine but the mapped input does not match the definition's inputSchema: 422.
    nonum = json.dumps({"kind": "no number"}).encode()
    r = await stack.http.post(f"/v1/hooks/{hook}", content=nonum, headers=signed(nonum, "b7"))
    assert r.status_code == 422 and r.json()["code"] == "input_invalid", r.text
    # Unknown hook ids (well-formed or not): 404, without reading further.
    for unknown in ["A" * 32, "no.such.hook", "x" * 65]:
        r = await stack.http.post(f"/v1/hooks/{unknown}", content=body, headers=signed(body, "u"))
        assert r.status_code == 404 and r.json()["code"] == "hook_not_found", r.text
    await asyncio.sleep(1.0)
    assert await inbox_rows(stack, hook) == 0 and await inbox_rows(stack, gh) == 0
    assert await run_count(stack, "on-hook-bad") == 0

    # The genuine GitHub call: the body itself is the input (no mapping).
    r = await stack.http.post(f"/v1/hooks/{gh}", content=body, headers=github_signed(body, "g9"))
    assert r.status_code == 202, r.text
    run_id = r.json()["runId"]
    assert await inbox_rows(stack, gh) == 1

    async def projected() -> dict[str, Any] | None:
        # Until the projection has the run, the view comes from Temporal without input.
        r = await stack.http.get(f"/v1/runs/{run_id}", headers=stack.auth())
        return r.json() if r.status_code == 200 and r.json().get("input") else None

    assert (await until(projected))["input"] == {"number": 1}
    assert await run_count(stack, "on-hook-bad") == 1


async def test_hook_ids_are_stable_and_listed_and_pause_refuses(stack: Stack) -> None:
    ids = await setup(stack, "on-hook-list")
    r = await stack.http.get("/v1/definitions/on-hook-list/hooks", headers=stack.auth("operator"))
    items = r.json()["items"]
    assert [h["trigger"] for h in items] == ["github", "payments"]
    assert all(h["url"].endswith(f"/v1/hooks/{h['hookId']}") for h in items)
    assert {h["signature"] for h in items} == {"github", "standard"}
    assert len(set(ids.values())) == 2 and all(len(i) >= 32 for i in ids.values())
    # Ingest keys may not list hooks; nor may anyone without a key.
    r = await stack.http.get("/v1/definitions/on-hook-list/hooks", headers=stack.auth("ingest"))
    assert r.status_code == 403
    r = await stack.http.get("/v1/definitions/on-hook-list/hooks")
    assert r.status_code == 401
    r = await stack.http.get("/v1/definitions/no-such-def/hooks", headers=stack.auth())
    assert r.status_code == 404

    # Republishing keeps the ids of triggers that keep their names; a removed trigger's
    # hook is gone (404).
    changed = {**ON_HOOK, "description": "v2", "triggers": ON_HOOK["triggers"][:1]}
    assert await stack.publish("on-hook-list", changed) == 2
    assert await hook_ids(stack, "on-hook-list") == {"payments": ids["payments"]}
    body = json.dumps({"number": 5}).encode()
    r = await stack.http.post(
        f"/v1/hooks/{ids['github']}", content=body, headers=github_signed(body, "x")
    )
    assert r.status_code == 404

    # Paused: a genuine call is refused with 409 and nothing is stored (the sender
    # retries); after resuming it is accepted.
    r = await stack.http.post("/v1/definitions/on-hook-list/pause", headers=stack.auth("publisher"))
    assert r.status_code == 200
    hook = ids["payments"]
    r = await stack.http.post(f"/v1/hooks/{hook}", content=body, headers=signed(body, "p1"))
    assert r.status_code == 409 and r.json()["code"] == "definition_paused", r.text
    assert await inbox_rows(stack, hook) == 0
    r = await stack.http.post(
        "/v1/definitions/on-hook-list/resume", headers=stack.auth("publisher")
    )
    r = await stack.http.post(f"/v1/hooks/{hook}", content=body, headers=signed(body, "p1"))
    assert r.status_code == 202, r.text
    await until(lambda: _count_is(stack, "on-hook-list", 1))

"""http.request and webhook.send on the real stack, against receivers on loopback only
(127.0.0.2 is allow-listed through the API; 127.0.0.1 never is)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook
from temporalio.client import WorkflowFailureError

from tests.integration.conftest import Stack
from tests.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def allowed() -> Iterator[Receiver]:
    """The receiver the tests allow-list (127.0.0.2 answers on Linux without setup)."""
    with Receiver("127.0.0.2") as receiver:
        yield receiver


@pytest.fixture
def refused() -> Iterator[Receiver]:
    """A receiver on 127.0.0.1, which no test allow-lists: it must never be reached."""
    with Receiver("127.0.0.1") as receiver:
        yield receiver


async def allow(stack: Stack, entries: list[str]) -> None:
    r = await stack.http.put("/v1/egress-rules", headers=stack.auth(), json={"allow": entries})
    assert r.status_code == 200, r.text


def call(action: str, data: dict[str, Any], **step: Any) -> dict[str, Any]:
    """A definition calling ``action`` once and returning its output."""
    return {
        "steps": [
            {
                "id": "call",
                "type": "action.call",
                "action": action,
                "input": data,
                "output": "res",
                **step,
            },
            {"id": "done", "type": "control.return", "output": {"$expr": "vars.res"}},
        ]
    }


async def run(stack: Stack, key: str, definition: dict[str, Any]) -> dict[str, Any]:
    await stack.publish(key, definition)
    started = await stack.start(key)
    result = await stack.result(started)
    return {"id": started["id"], "output": result["output"]}


async def fails(stack: Stack, key: str, definition: dict[str, Any]) -> dict[str, Any]:
    """Run ``definition``, which must fail; the run's error (projection)."""
    await stack.publish(key, definition)
    started = await stack.start(key)
    with pytest.raises(WorkflowFailureError):
        await stack.result(started)
    view = await stack.run_view(started["id"])
    assert view["status"] == "FAILED"
    return {"id": started["id"], **view["error"]}


async def attempts(stack: Stack, run_id: str) -> list[tuple[int, str]]:
    r = await stack.http.get(f"/v1/runs/{run_id}/invocations", headers=stack.auth())
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    return [(a["attempt"], a["status"]) for a in item["attemptLog"]]


FAST_RETRY = {"retry": {"initialInterval": "PT0.05S", "maxAttempts": 3}}


async def test_request_parses_json_and_sends_the_idempotency_key(
    stack: Stack, allowed: Receiver
) -> None:
    await allow(stack, ["127.0.0.2"])
    got = await run(
        stack,
        "get-json",
        call(
            "http.request",
            {
                "url": allowed.url("/json?a=1"),
                "query": {"b": [2, 3]},
                "method": "POST",
                "json": {"order": 7},
            },
        ),
    )
    out = got["output"]
    assert out["status"] == 200 and out["bodyEncoding"] == "json"
    assert out["headers"]["content-type"] == "application/json"
    assert out["durationMs"] > 0 and out["url"].startswith(allowed.url("/json"))
    body = out["body"]
    assert body["method"] == "POST" and body["query"] == {"a": "1", "b": "2"}
    assert json.loads(body["body"]) == {"order": 7}
    assert body["contentType"] == "application/json"
    (seen,) = allowed.at("/json")
    assert seen.query == {"a": "1", "b": "2"}
    # The step's idempotency key, the same on every attempt.
    assert len(body["idempotencyKey"]) >= 32

    text = await run(
        stack,
        "get-text",
        call("http.request", {"url": allowed.url("/text"), "idempotencyHeader": None}),
    )
    assert text["output"]["body"] == "plain text ✓" and text["output"]["bodyEncoding"] == "text"
    binary = await run(
        stack,
        "get-binary",
        call("http.request", {"url": allowed.url("/binary"), "form": {"a": "b"}, "method": "PUT"}),
    )
    assert binary["output"]["bodyEncoding"] == "base64"
    assert base64.b64decode(binary["output"]["body"]) == bytes(range(256))
    seen_text = allowed.at("/text")[0]
    assert "idempotency-key" not in seen_text.headers
    assert allowed.at("/binary")[0].body == b"a=b"


async def test_client_error_fails_at_once_with_status_and_excerpt(
    stack: Stack, allowed: Receiver
) -> None:
    await allow(stack, ["127.0.0.2"])
    error = await fails(
        stack, "not-found", call("http.request", {"url": allowed.url("/status/404")}, **FAST_RETRY)
    )
    assert error["type"] == "HttpStatusError"
    details = error["details"][0]
    assert details["status"] == 404 and details["bodyExcerpt"] == "no such order: 42"
    assert len(allowed.at("/status/404")) == 1  # not retried
    assert await attempts(stack, error["id"]) == [(1, "FAILED")]


async def test_server_error_is_retried_then_succeeds(stack: Stack, allowed: Receiver) -> None:
    await allow(stack, ["127.0.0.2"])
    got = await run(
        stack, "flaky", call("http.request", {"url": allowed.url("/flaky?key=a")}, **FAST_RETRY)
    )
    assert got["output"]["status"] == 200 and got["output"]["body"] == {"ok": True}
    assert len(allowed.at("/flaky")) == 2
    assert await attempts(stack, got["id"]) == [(1, "FAILED"), (2, "SUCCEEDED")]
    # Both attempts carried the same idempotency key.
    keys = {r.headers["idempotency-key"] for r in allowed.at("/flaky")}
    assert len(keys) == 1


async def test_retry_after_is_honoured_within_max_interval(stack: Stack, allowed: Receiver) -> None:
    await allow(stack, ["127.0.0.2"])
    got = await run(
        stack,
        "limited",
        call("http.request", {"url": allowed.url("/limited?key=a&after=1")}, **FAST_RETRY),
    )
    assert got["output"]["status"] == 200
    first, second = allowed.at("/limited")
    assert second.at - first.at >= 0.9  # Retry-After: 1, not the 50 ms backoff
    # A Retry-After beyond the step's maxInterval is cut to it.
    capped = await run(
        stack,
        "limited-capped",
        call(
            "http.request",
            {"url": allowed.url("/limited?key=b&after=3600")},
            retry={"initialInterval": "PT0.05S", "maxInterval": "PT0.3S"},
        ),
    )
    assert capped["output"]["status"] == 200
    first, second = [r for r in allowed.at("/limited") if r.query["key"] == "b"]
    assert 0.25 <= second.at - first.at < 10


async def test_connection_errors_and_timeouts_are_retried(stack: Stack, allowed: Receiver) -> None:
    await allow(stack, ["127.0.0.2"])
    with socket.socket() as probe:  # a port on the allowed address with no listener
        probe.bind(("127.0.0.2", 0))
        closed = probe.getsockname()[1]
    retry = {"retry": {"initialInterval": "PT0.05S", "maxAttempts": 2}}
    refused = await fails(
        stack, "refused", call("http.request", {"url": f"http://127.0.0.2:{closed}/"}, **retry)
    )
    assert refused["type"] == "HttpConnectionError"
    assert await attempts(stack, refused["id"]) == [(1, "FAILED"), (2, "FAILED")]
    slow = await fails(
        stack,
        "slow",
        call("http.request", {"url": allowed.url("/slow?seconds=1.5"), "timeout": 0.3}, **retry),
    )
    assert slow["type"] == "HttpTimeout" and "0.3 s" in slow["message"]
    assert await attempts(stack, slow["id"]) == [(1, "FAILED"), (2, "FAILED")]
    assert len(allowed.at("/slow")) == 2


async def test_oversized_response_fails_without_retry(stack: Stack, allowed: Receiver) -> None:
    await allow(stack, ["127.0.0.2"])
    error = await fails(
        stack,
        "big",
        call(
            "http.request",
            {"url": allowed.url("/big?bytes=300000"), "maxResponseBytes": 10000},
            **FAST_RETRY,
        ),
    )
    assert error["type"] == "HttpResponseTooLarge"
    assert "10000 bytes" in error["message"]
    assert len(allowed.at("/big")) == 1


async def test_egress_policy_wiring_on_loopback(
    stack: Stack, allowed: Receiver, refused: Receiver
) -> None:
    # Not allow-listed yet: loopback is refused before any connection.
    error = await fails(stack, "before", call("http.request", {"url": allowed.url("/json")}))
    assert error["type"] == "EgressDenied"
    assert error["details"][0]["rule"] == "loopback"
    assert allowed.requests == []

    await allow(stack, ["127.0.0.2"])
    ok = await run(stack, "after", call("http.request", {"url": allowed.url("/json")}))
    assert ok["output"]["status"] == 200
    # A redirect to another allowed URL is followed ...
    hop = await run(
        stack,
        "hop",
        call("http.request", {"url": allowed.url(f"/redirect?to={allowed.url('/text')}")}),
    )
    assert hop["output"]["body"] == "plain text ✓"
    # ... one to a refused address is not, and the target never hears of it.
    error = await fails(
        stack,
        "rebound",
        call("http.request", {"url": allowed.url(f"/redirect?to={refused.url('/json')}")}),
    )
    assert error["type"] == "EgressDenied" and error["details"][0]["rule"] == "loopback"
    # By name too (localhost resolves to loopback), and never another scheme.
    by_name = await fails(
        stack, "by-name", call("http.request", {"url": f"http://localhost:{refused.port}/json"})
    )
    assert by_name["type"] == "EgressDenied"
    # Other spellings of 127.0.0.1 (SSRF filter bypasses) resolve to it and are refused.
    for i, host in enumerate(["[::ffff:127.0.0.1]", "2130706433", "0x7f.1", "127.1"]):
        spelled = await fails(
            stack, f"spelled-{i}", call("http.request", {"url": f"http://{host}:{refused.port}/"})
        )
        assert spelled["type"] == "EgressDenied", (host, spelled)
        assert spelled["details"][0]["rule"] == "loopback", (host, spelled)
    assert refused.requests == []
    scheme = await fails(stack, "scheme", call("http.request", {"url": "file:///etc/passwd"}))
    assert scheme["type"] == "EgressDenied" and scheme["details"][0]["rule"] == "scheme"
    malformed = await fails(stack, "malformed", call("http.request", {"url": "http://[::1"}))
    assert malformed["type"] == "HttpUrlInvalid"
    too_many = await fails(
        stack,
        "loop",
        call(
            "http.request",
            {"url": allowed.url(f"/redirect?to={allowed.url('/redirect')}"), "maxRedirects": 1},
        ),
    )
    assert too_many["type"] == "HttpTooManyRedirects"


async def test_egress_rules_api(stack: Stack, other_tenant: dict[str, str]) -> None:
    r = await stack.http.get("/v1/egress-rules", headers=stack.auth())
    assert r.status_code == 200 and r.json() == {"allow": [], "updatedAt": None}
    r = await stack.http.put(
        "/v1/egress-rules",
        headers=stack.auth(),
        json={"allow": ["10.1.2.0/24", "Billing.Internal", "billing.internal", "*.corp.example"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["allow"] == ["10.1.2.0/24", "billing.internal", "*.corp.example"]
    r = await stack.http.get("/v1/egress-rules", headers=stack.auth())
    assert r.json()["allow"] == ["10.1.2.0/24", "billing.internal", "*.corp.example"]
    assert r.json()["updatedAt"]

    bad = await stack.http.put(
        "/v1/egress-rules",
        headers=stack.auth(),
        json={"allow": ["10.1.2.3/24", "ok.example", "http://x.example"]},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    problem = bad.json()
    assert problem["code"] == "egress_rules_invalid"
    assert [e["path"] for e in problem["errors"]] == ["/allow/0", "/allow/2"]
    # Unchanged by the refused request; admin only; per tenant.
    r = await stack.http.get("/v1/egress-rules", headers=stack.auth())
    assert r.json()["allow"] == ["10.1.2.0/24", "billing.internal", "*.corp.example"]
    for role in ("publisher", "operator"):
        r = await stack.http.put("/v1/egress-rules", headers=stack.auth(role), json={"allow": []})
        assert r.status_code == 403
    r = await stack.http.get("/v1/egress-rules", headers=other_tenant)
    assert r.json()["allow"] == []


async def test_webhook_is_signed_and_a_retry_carries_the_same_id(
    stack: Stack, allowed: Receiver
) -> None:
    await allow(stack, ["127.0.0.2"])
    payload = {"event": "order.paid", "order": {"id": "o-1", "total": 110}}
    got = await run(
        stack,
        "hook",
        call(
            "webhook.send",
            {
                "url": allowed.url("/webhook?key=a"),
                "payload": payload,
                "secret": SECRET,
                "headers": {"X-Source": "tempoflow"},
            },
            **FAST_RETRY,
        ),
    )
    assert got["output"]["status"] == 200 and got["output"]["body"] == {"received": True}
    deliveries = allowed.at("/webhook")
    assert len(deliveries) == 2  # a 500, then a success
    ids = {d.headers["webhook-id"] for d in deliveries}
    assert ids == {got["output"]["webhookId"]}
    for delivery in deliveries:
        assert Webhook(SECRET).verify(delivery.body, delivery.headers) == payload
        assert delivery.headers["x-source"] == "tempoflow"
    assert await attempts(stack, got["id"]) == [(1, "FAILED"), (2, "SUCCEEDED")]

    error = await fails(
        stack,
        "hook-bad-secret",
        call(
            "webhook.send",
            {"url": allowed.url("/webhook?key=b"), "payload": {}, "secret": "whsec_not base64!"},
        ),
    )
    assert error["type"] == "WebhookSecretInvalid"
    assert not [d for d in allowed.at("/webhook") if d.query["key"] == "b"]

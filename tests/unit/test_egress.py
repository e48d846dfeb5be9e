"""The egress policy on resolved addresses, the pinned connector and the HTTP action's
pure parts. No test here opens a socket: the connector's real backend is replaced by a
recorder, and refused classes are judged on address objects only."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from activities.egress import AllowLists, EgressDeniedError, EgressTransport, PinnedBackend
from activities.http import (
    HttpRequestInput,
    TooLargeError,
    build_exchange,
    decode_body,
    parse_retry_after,
    read_capped,
    status_accepted,
)
from activities.registry import ActionContext, ActionError
from activities.webhook import sign
from tempoflow.egress import AllowList, check_entry, classify, decide, embedded_ipv4
from tempoflow.settings import Settings

ip = ipaddress.ip_address

REFUSED = [
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "shared-address"),
    ("100.127.255.255", "shared-address"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.10", "reserved"),  # documentation
    ("198.18.0.1", "reserved"),  # benchmarking
    ("2001:db8::1", "reserved"),  # documentation
    ("fec0::1", "reserved"),  # deprecated site-local
    # IPv6 forms embedding a refused IPv4 address are judged by it.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:0:0", "unspecified"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("64:ff9b::7f00:1", "loopback"),
    ("2002:c0a8:0101::1", "private"),  # 6to4 of 192.168.1.1
    ("2002:7f00:1::", "loopback"),
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "rule"), REFUSED)
def test_refused_classes(address: str, rule: str) -> None:
    assert classify(ip(address)) == rule
    decision = decide("https", "example.test", [ip(address)])
    assert not decision.allowed
    assert decision.rule == rule and decision.address == str(ip(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert classify(ip(address)) == "public"
    assert decide("http", "example.test", [ip(address)]).allowed


def test_embedded_ipv4_forms() -> None:
    assert embedded_ipv4(ip("::ffff:1.2.3.4")) == ip("1.2.3.4")
    assert embedded_ipv4(ip("2002:0102:0304::")) == ip("1.2.3.4")
    assert embedded_ipv4(ip("64:ff9b::102:304")) == ip("1.2.3.4")
    assert embedded_ipv4(ip("1.2.3.4")) is None
    assert embedded_ipv4(ip("2606:4700::1")) is None


@pytest.mark.parametrize("scheme", ["file", "ftp", "gopher", "ws", "javascript", ""])
def test_schemes_other_than_http_are_refused(scheme: str) -> None:
    decision = decide(scheme, "example.test", [ip("8.8.8.8")])
    assert not decision.allowed and decision.rule == "scheme"


def test_every_resolved_address_must_pass() -> None:
    """One refused address among the answers refuses the host (an attacker's DNS may
    return a public address beside a private one)."""
    decision = decide("https", "mixed.test", [ip("8.8.8.8"), ip("10.0.0.5")])
    assert not decision.allowed and decision.rule == "private"
    assert decision.address == "10.0.0.5"
    assert not decide("https", "nothing.test", []).allowed


def test_allow_list_by_network_host_and_suffix() -> None:
    allow = AllowList.parse(["10.1.2.0/24", "billing.internal", "*.corp.example", "fd00::/8"])
    ok = decide("https", "x.test", [ip("10.1.2.7")], allow)
    assert ok.allowed and ok.rule == "allow-list" and ok.entry == "10.1.2.0/24"
    assert decide("https", "x.test", [ip("10.1.3.7")], allow).rule == "private"
    assert decide("https", "x.test", [ip("fd00::5")], allow).allowed
    # A network entry does not leak to the IPv4-mapped form of another class.
    assert not decide("https", "x.test", [ip("::ffff:127.0.0.1")], allow).allowed
    by_host = decide("https", "Billing.Internal.", [ip("10.9.9.9")], allow)
    assert by_host.allowed and by_host.entry == "billing.internal"
    assert decide("https", "api.corp.example", [ip("192.168.0.1")], allow).allowed
    assert not decide("https", "corp.example", [ip("192.168.0.1")], allow).allowed
    assert not decide("https", "evilcorp.example", [ip("192.168.0.1")], allow).allowed
    # The allow-list never opens other schemes.
    assert decide("file", "billing.internal", [ip("10.9.9.9")], allow).rule == "scheme"


@pytest.mark.parametrize(
    ("entry", "valid"),
    [
        ("10.1.2.0/24", True),
        ("10.1.2.3", True),
        ("fd00::/8", True),
        ("billing.internal", True),
        ("*.corp.example", True),
        ("localhost", True),
        ("10.1.2.3/24", False),  # host bits set
        ("300.1.2.0/24", False),
        ("10.0.0.0/33", False),
        ("http://billing.internal", False),
        ("billing.internal:8443", False),
        ("bad_host!", False),
        ("a.*.example", False),
        ("", False),
    ],
)
def test_allow_list_entries(entry: str, valid: bool) -> None:
    assert (check_entry(entry) is None) is valid


class _Recorder:
    """Stands in for the socket layer: records where a connection would go."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any) -> Any:
        self.connected.append(host)
        return object()


async def test_pinned_backend_connects_only_to_the_checked_address() -> None:
    answers = [[ip("8.8.8.8")], [ip("10.0.0.1")]]  # a rebinding DNS server

    async def resolver(host: str, port: int) -> list[Any]:
        return answers.pop(0)

    backend = PinnedBackend(AllowList(), resolver)
    recorder = backend._inner = _Recorder()  # type: ignore[assignment]
    await backend.connect_tcp("rebind.test", 443)
    assert recorder.connected == ["8.8.8.8"]  # the address checked, never the name
    with pytest.raises(EgressDeniedError) as denied:
        await backend.connect_tcp("rebind.test", 443)
    assert denied.value.decision.rule == "private"
    assert recorder.connected == ["8.8.8.8"]  # nothing opened for the refused answer


async def test_pinned_backend_refuses_metadata_through_mapped_address() -> None:
    async def resolver(host: str, port: int) -> list[Any]:
        return [ip("::ffff:169.254.169.254")]

    backend = PinnedBackend(AllowList(), resolver)
    recorder = backend._inner = _Recorder()  # type: ignore[assignment]
    with pytest.raises(EgressDeniedError) as denied:
        await backend.connect_tcp("metadata.test", 80)
    assert denied.value.decision.rule == "link-local"
    assert "PUT /v1/egress-rules" in str(denied.value)
    assert recorder.connected == []


def test_retry_after_parsing() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == timedelta(seconds=7)
    assert parse_retry_after(" 0 ") == timedelta(0)
    assert parse_retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now) == timedelta(seconds=30)
    assert parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", now) == timedelta(0)
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None


def test_accepted_statuses() -> None:
    assert status_accepted(204, None) and not status_accepted(302, None)
    assert status_accepted(404, [200, "4xx"]) and not status_accepted(500, [200, "4xx"])
    with pytest.raises(ValueError, match="status class"):
        HttpRequestInput.model_validate({"url": "http://x.test", "acceptedStatuses": ["2x"]})
    with pytest.raises(ValueError, match="not an HTTP status"):
        HttpRequestInput.model_validate({"url": "http://x.test", "acceptedStatuses": [700]})


def test_exactly_one_body() -> None:
    with pytest.raises(ValueError, match="at most one of json, body and form"):
        HttpRequestInput.model_validate({"url": "http://x.test", "json": {}, "body": "x"})
    data = HttpRequestInput.model_validate({"url": "http://x.test", "json": None})
    assert "json_body" in data.model_fields_set  # a JSON null body is a body


def test_body_decoding() -> None:
    assert decode_body(b'{"a": 1}', "application/json; charset=utf-8", None) == ({"a": 1}, "json")
    assert decode_body(b'{"a": 1}', "application/problem+json", None) == ({"a": 1}, "json")
    assert decode_body(b"not json", "application/json", None) == ("not json", "text")
    assert decode_body(b"", "application/json", None) == (None, "json")
    assert decode_body("héllo".encode("latin-1"), "text/plain", "latin-1") == ("héllo", "text")
    assert decode_body(b"\xff\xfe\x00", "application/octet-stream", None) == ("//4A", "base64")


async def _chunks(sent: list[int], n: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        sent.append(size)
        yield b"x" * size


async def test_size_cap_stops_reading() -> None:
    sent: list[int] = []
    response = httpx.Response(200, content=_chunks(sent, 100, 1000))
    with pytest.raises(TooLargeError):
        await read_capped(response, 2500)
    assert len(sent) == 3  # stopped at the first chunk past the cap, not at the end
    ok = httpx.Response(200, content=_chunks([], 2, 1000))
    assert len(await read_capped(ok, 2000)) == 2000


async def test_size_cap_trusts_a_declared_length() -> None:
    sent: list[int] = []
    response = httpx.Response(
        200, headers={"content-length": "999999"}, content=_chunks(sent, 1, 10)
    )
    with pytest.raises(TooLargeError, match="declares 999999"):
        await read_capped(response, 1000)
    assert sent == []


def _ctx() -> ActionContext:
    return ActionContext("t", "r", "t/r", "/steps/0", "call", 1, "key-1", logging.getLogger())


def test_request_building() -> None:
    settings = Settings(http_max_redirects=3)

    def build(**data: Any) -> Any:
        return build_exchange(HttpRequestInput.model_validate(data), _ctx(), settings)

    plain = build(url="http://x.test/")
    assert plain.headers == {"Idempotency-Key": "key-1"} and plain.content is None
    assert plain.max_redirects == 3 and plain.timeout == settings.http_default_timeout_seconds
    assert build(url="http://x.test/", maxRedirects=10).max_redirects == 3  # never above
    assert build(url="http://x.test/", idempotencyHeader=None).headers == {}
    own = build(url="http://x.test/", headers={"idempotency-key": "mine"})
    assert own.headers == {"idempotency-key": "mine"}
    renamed = build(url="http://x.test/", idempotencyHeader="X-Request-Id")
    assert renamed.headers == {"X-Request-Id": "key-1"}
    posted = build(url="http://x.test/", method="POST", json={"a": [1, "é"]})
    assert posted.content == b'{"a":[1,"\\u00e9"]}'  # ASCII: no lone surrogate can break it
    assert posted.headers["Content-Type"] == "application/json"
    form = build(url="http://x.test/", method="POST", form={"a": "b c", "ok": True, "n": 2})
    assert form.content == b"a=b+c&ok=true&n=2"
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_webhook_signature_verifies() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"event":"paid"}'
    headers = sign(secret, "key-1", body, datetime.now(UTC))
    assert headers["webhook-id"] == "key-1"
    assert Webhook(secret).verify(body, headers) == {"event": "paid"}
    with pytest.raises(ActionError) as bad:
        sign("whsec_%%%", "key-1", body, datetime.now(UTC))
    assert bad.value.type == "WebhookSecretInvalid" and not bad.value.retryable


async def test_pools_are_kept_per_allow_list() -> None:
    transport = EgressTransport()
    one, same = AllowList.parse(["10.0.0.0/8"]), AllowList.parse(["10.0.0.0/8"])
    assert transport._pool(one) is transport._pool(same)
    assert transport._pool(AllowList()) is not transport._pool(one)
    await transport.aclose()
    assert await AllowLists(None, 10).get("any") == AllowList()  # no database: empty


class _Rows:
    """A stand-in session factory: answers an allow-list row, or fails (outage)."""

    def __init__(self, allow: list[str]) -> None:
        self.allow, self.down, self.reads = allow, False, 0

    def __call__(self) -> _Rows:
        return self

    async def __aenter__(self) -> _Rows:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def execute(self, stmt: Any) -> Any:
        self.reads += 1
        if self.down:
            raise OSError("database down")
        row = type("Row", (), {"allow": self.allow, "updated_at": None})()
        return type("Result", (), {"one_or_none": lambda _: row})()


async def test_allow_lists_cache_and_survive_an_outage() -> None:
    rows = _Rows(["10.0.0.0/8"])
    cached = AllowLists(rows, ttl=60)  # type: ignore[arg-type]
    assert await cached.get("t") == AllowList.parse(["10.0.0.0/8"])
    rows.allow = ["192.168.0.0/16"]
    assert await cached.get("t") == AllowList.parse(["10.0.0.0/8"])  # within the TTL
    assert rows.reads == 1
    uncached = AllowLists(rows, ttl=0)  # type: ignore[arg-type]
    assert await uncached.get("t") == AllowList.parse(["192.168.0.0/16"])
    rows.down = True
    assert await uncached.get("t") == AllowList.parse(["192.168.0.0/16"])  # the last read
    with pytest.raises(OSError):
        await uncached.get("never-read")  # nothing to fall back on: retried

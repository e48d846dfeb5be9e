"""Encrypted history: with TEMPOFLOW_PAYLOAD_KEY, Temporal holds only ciphertext, runs
still complete, the codec endpoint decodes for operators, and rotated keys still read."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from app.main import create_app
from tempoflow.codec import ENCODING, KEY_ID_METADATA, new_key
from tempoflow.settings import Settings
from tempoflow.temporal_client import data_converter
from tests.integration.conftest import Stack, open_stack
from tests.servers import serve_app

MARKER = "card-4111-secret-7731"
OLD, NEW = new_key(), new_key()
UI = "http://127.0.0.1:8233"

DEFINITION = {
    "steps": [
        {
            "id": "echo",
            "type": "action.call",
            "action": "test.echo",
            "input": {"card": {"$expr": "payload.card"}},
            "output": "echoed",
        },
        {"id": "done", "type": "control.return", "output": {"$expr": "vars.echoed"}},
    ]
}


def codec_client(plain: Client, payload_key: str) -> Client:
    """The suite's Temporal connection with the project's converter for ``payload_key``."""
    settings = Settings(payload_key=payload_key)
    return Client(
        plain.service_client, namespace=plain.namespace, data_converter=data_converter(settings)
    )


def payloads_of(history_json: str) -> list[dict[str, Any]]:
    """Every data Payload (protobuf JSON) in a history. Search attributes (indexed by
    Temporal, never encrypted; they hold tenant, definition key and version) and the
    SDK's marker bookkeeping (patch ids, local activity attempt and times) are left out."""
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("markerName") == "core_patch":
                return
            if value.get("markerName") == "core_local_activity":
                # The SDK's own bookkeeping (seq, attempt, times) stays plain; the local
                # activity's result ("result") is a data payload like any other.
                walk(value.get("details", {}).get("result"))
                return
            if "metadata" in value and "encoding" in value.get("metadata", {}):
                found.append(value)
                return
            for k, v in value.items():
                if k != "searchAttributes":
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(history_json))
    return found


async def raw_history(plain: Client, workflow_id: str) -> tuple[bytes, list[dict[str, Any]]]:
    """The history as Temporal stores it (fetched WITHOUT the codec): its bytes and its
    payloads."""
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    return raw, payloads_of(history.to_json())


async def run_once(stack: Stack, key: str) -> dict[str, Any]:
    await stack.publish(key, DEFINITION)
    run = await stack.start(key, {"card": MARKER})
    assert (await stack.result(run))["output"] == {"card": MARKER, "attempt": 1}
    return run


async def decode(stack: Stack, payloads: list[dict[str, Any]], **headers: str) -> httpx.Response:
    return await stack.http.post(
        "/codec/decode", json={"payloads": payloads}, headers={**stack.auth("operator"), **headers}
    )


@pytest.mark.timeout(120)
async def test_history_is_ciphertext_and_the_codec_endpoint_decodes_it(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    key_v1 = f"v1:{OLD}"
    async with open_stack(
        database_url,
        codec_client(temporal_client, key_v1),
        sessions,
        payload_key=key_v1,
        codec_cors_origins=[UI],
    ) as stack:
        run = await run_once(stack, "secret-card")
        raw, payloads = await raw_history(temporal_client, run["workflowId"])
        assert MARKER.encode() not in raw  # nowhere in what Temporal stores
        assert len(payloads) >= 4  # start input, activity input and result, completion
        encoding = base64.b64encode(ENCODING).decode()
        unencrypted = [p for p in payloads if p["metadata"]["encoding"] != encoding]
        assert not unencrypted, [base64.b64decode(p["metadata"]["encoding"]) for p in unencrypted]
        assert {base64.b64decode(p["metadata"][KEY_ID_METADATA]) for p in payloads} == {b"v1"}

        # The run's view still shows the data (the API's client decrypts).
        assert (await stack.run_view(run["id"]))["output"] == {"card": MARKER, "attempt": 1}

        # The codec endpoint decodes them for an operator (and an admin).
        r = await decode(stack, payloads)
        assert r.status_code == 200, r.text
        decoded = [Payload(**{k: _bytes(v) for k, v in p.items()}) for p in r.json()["payloads"]]
        assert any(MARKER.encode() in p.data for p in decoded)
        assert all(p.metadata["encoding"] != ENCODING for p in decoded)
        # Encoding then decoding through the endpoint gives the input back.
        plain = {"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "eyJhIjogMX0="}
        r = await stack.http.post("/codec/encode", json={"payloads": [plain]}, headers=stack.auth())
        assert r.status_code == 200 and r.json()["payloads"][0] != plain
        assert (await decode(stack, r.json()["payloads"])).json()["payloads"] == [plain]

        # Authenticated: no key, a key without the role; an origin alone is not enough
        # outside development.
        r = await stack.http.post("/codec/decode", json={"payloads": payloads})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        r = await decode(stack, payloads, Authorization=f"Bearer {stack.keys['ingest']}")
        assert r.status_code == 403
        r = await stack.http.post(
            "/codec/decode", json={"payloads": payloads}, headers={"Origin": UI}
        )
        assert r.status_code == 401
        # Garbage is a 422 naming the payload, not a 500.
        forged = {**payloads[0], "data": base64.b64encode(b"x" * 40).decode()}
        r = await decode(stack, [payloads[0], forged])
        assert r.status_code == 422 and r.json()["code"] == "payload_not_decryptable"
        assert r.json()["errors"][0]["path"] == "/payloads/1"
        r = await decode(stack, [{"metadata": {"encoding": "%%%"}}])
        assert r.status_code == 422

        # The browser (Temporal UI) may call it: CORS for the UI's origin only.
        pre = await stack.http.options(
            "/codec/decode",
            headers={
                "Origin": UI,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
            },
        )
        assert pre.status_code == 200, pre.text
        assert pre.headers["access-control-allow-origin"] == UI
        assert "x-namespace" in pre.headers["access-control-allow-headers"]
        r = await decode(stack, payloads, Origin=UI)
        assert r.headers["access-control-allow-origin"] == UI
        pre = await stack.http.options(
            "/codec/decode",
            headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in pre.headers
        # Other endpoints stay same-origin.
        r = await stack.http.get("/v1/actions", headers={**stack.auth(), "Origin": UI})
        assert "access-control-allow-origin" not in r.headers
        first_payloads = payloads

        # The dispatcher's signals are encrypted too: an event's payload reaches the run
        # (which completes) without appearing in its history.
        r = await stack.http.put(
            "/v1/event-types/card.checked",
            headers=stack.auth(),
            json={"correlation": {"paths": ["/payload/order"]}},
        )
        assert r.status_code in (200, 201), r.text
        await stack.publish(
            "secret-wait",
            {
                "steps": [
                    {
                        "id": "w",
                        "type": "event.wait",
                        "event": "card.checked",
                        "correlationKey": "payload.order",
                        "timeout": "PT1M",
                        "output": "ev",
                    },
                ],
                "output": {"$expr": "vars.ev.payload"},
            },
        )
        waiting = await stack.start("secret-wait", {"order": "o-9"})
        r = await stack.http.post(
            "/v1/events",
            headers=stack.auth("ingest"),
            json={
                "name": "card.checked",
                "id": "ev-1",
                "payload": {"order": "o-9", "card": MARKER},
            },
        )
        assert r.status_code == 202, r.text
        done = await stack.result(waiting)
        assert done["output"] == {"order": "o-9", "card": MARKER}
        raw, payloads = await raw_history(temporal_client, waiting["workflowId"])
        assert MARKER.encode() not in raw
        plain_ones = [p for p in payloads if p["metadata"]["encoding"] != encoding]
        assert payloads and not plain_ones, [
            (base64.b64decode(p["metadata"]["encoding"]), base64.b64decode(p["data"])[:200])
            for p in plain_ones
        ]

    # Rotation: a new key first, the old one kept. New payloads use the new key; the old
    # run's history still decrypts, through the SDK and through the endpoint.
    rotated = f"v2:{NEW},v1:{OLD}"
    client = codec_client(temporal_client, rotated)
    async with open_stack(database_url, client, sessions, payload_key=rotated) as stack:
        second = await run_once(stack, "secret-card-2")
        raw, payloads = await raw_history(temporal_client, second["workflowId"])
        assert MARKER.encode() not in raw
        assert {base64.b64decode(p["metadata"][KEY_ID_METADATA]) for p in payloads} == {b"v2"}
        old = await client.get_workflow_handle(run["workflowId"]).result()
        assert old["output"] == {"card": MARKER, "attempt": 1}
        r = await decode(stack, first_payloads)
        assert r.status_code == 200
        assert any(MARKER.encode() in _bytes(p["data"]) for p in r.json()["payloads"])

    # Without the old key, its payloads are refused with the key id named.
    only_new = f"v2:{NEW}"
    async with open_stack(
        database_url, codec_client(temporal_client, only_new), sessions, payload_key=only_new
    ) as stack:
        r = await decode(stack, first_payloads)
        assert r.status_code == 422 and "'v1'" in r.json()["detail"]


async def test_development_ui_origin_needs_no_key(
    database_url: str, temporal_client: Client
) -> None:
    """The dev server's Web UI has no login to forward: in development only, a request
    from the configured UI origin is served without a key."""
    settings = Settings(
        environment="development",
        database_url=database_url,
        payload_key=f"v1:{OLD}",
        codec_cors_origins=[UI],
        dispatcher_enabled=False,
    )
    app = create_app(settings, temporal=codec_client(temporal_client, f"v1:{OLD}"))
    plain = {"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "eyJhIjogMX0="}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        enc = await http.post("/codec/encode", json={"payloads": [plain]}, headers={"Origin": UI})
        assert enc.status_code == 200, enc.text
        dec = await http.post("/codec/decode", json=enc.json(), headers={"Origin": UI})
        assert dec.status_code == 200 and dec.json()["payloads"] == [plain]
        other = await http.post(
            "/codec/decode", json=enc.json(), headers={"Origin": "http://127.0.0.1:9999"}
        )
        assert other.status_code == 401
    # A client that is not on this machine needs the key even with the UI's origin.
    remote = httpx.ASGITransport(app=app, client=("192.0.2.10", 5555))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=remote, base_url="http://t") as http,
    ):
        r = await http.post("/codec/decode", json=enc.json(), headers={"Origin": UI})
        assert r.status_code == 401


def _bytes(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: base64.b64decode(v) for k, v in value.items()}
    return base64.b64decode(value)


@pytest.mark.timeout(120)
async def test_the_temporal_cli_reads_history_through_the_codec_endpoint(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Temporal's own client of the codec protocol (the CLI; the Web UI speaks the same)
    against a real API server on loopback."""
    key = f"v1:{OLD}"
    client = codec_client(temporal_client, key)
    async with open_stack(database_url, client, sessions, payload_key=key) as stack:
        run = await run_once(stack, "cli-card")
        app = create_app(stack.settings, registry=stack.worker_registry, temporal=client)
        async with serve_app(app) as base:
            cli = [
                str(Path(sys.executable).with_name("temporal")),
                "workflow",
                "show",
                "--address",
                temporal_client.service_client.config.target_host,
                "-w",
                run["workflowId"],
                "--output",
                "json",
            ]

            async def show(*extra: str) -> str:
                proc = await asyncio.create_subprocess_exec(
                    *cli, *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
                )
                out, err = await proc.communicate()
                assert proc.returncode == 0, err.decode()
                return out.decode()

            encoded = base64.b64encode(MARKER.encode()).decode()[:16]
            raw = await show()
            assert MARKER not in raw and encoded not in raw
            endpoint = f"{base}/codec"
            decoded = await show(
                "--codec-endpoint", endpoint, "--codec-auth", f"Bearer {stack.keys['operator']}"
            )
            shown = payloads_of(decoded)
            encrypted = base64.b64encode(ENCODING).decode()
            assert shown and all(p["metadata"]["encoding"] != encrypted for p in shown)
            assert any(MARKER.encode() in base64.b64decode(p["data"]) for p in shown)

"""The pipeline commands (publish, runs, events, tail) as a CI job runs them: the real
``tempoflow`` process against the API served over HTTP on loopback, with the real worker,
Temporal and PostgreSQL; ``--json`` output parsed and exit codes checked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.main import create_app
from tests.integration.conftest import Stack, until
from tests.servers import closed_port, serve_app

pytestmark = pytest.mark.timeout(240)

ECHO = {"steps": [{"id": "echo", "type": "action.call", "action": "test.echo"}]}
FLAKY = {  # fails once (no retries), succeeds when retried
    "steps": [
        {"id": "one", "type": "action.call", "action": "test.count"},
        {
            "id": "two",
            "type": "action.call",
            "action": "test.flaky",
            "input": {"failures": 1},
            "retry": {"maxAttempts": 1},
        },
    ]
}
GATED = {"steps": [{"id": "gate", "type": "action.call", "action": "test.gate"}]}
HEARTBEAT = {"steps": [{"id": "beat", "type": "action.call", "action": "test.heartbeat"}]}
PAID = "order.paid"
WAIT_PAYMENT = {
    "steps": [
        {
            "id": "payment",
            "type": "event.wait",
            "event": PAID,
            "correlationKey": "payload.orderId",
            "timeout": "PT5M",
            "output": "payment",
        }
    ],
    "output": {"amount": {"$expr": "vars.payment.payload.amount"}},
}


@dataclass
class Out:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    env: dict[str, str]

    async def start(self, *args: str, **env: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "launcher.cli",
            *args,
            env={**self.env, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def __call__(self, *args: str, **env: str) -> Out:
        return await finish(await self.start(*args, **env))


async def finish(proc: asyncio.subprocess.Process, within: float = 120) -> Out:
    stdout, stderr = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return Out(proc.returncode, stdout.decode(), stderr.decode())


@contextlib.asynccontextmanager
async def served(stack: Stack) -> AsyncIterator[str]:
    """The stack's API on a real uvicorn server on loopback; its base URL."""
    # A heartbeat each second: `tail --timeout` sees the time pass on a quiet stream.
    settings = stack.settings.model_copy(update={"stream_heartbeat_seconds": 1.0})
    app = create_app(settings, registry=stack.worker_registry, temporal=stack.client)
    async with serve_app(app) as base:
        yield base


@pytest.fixture
async def cli(stack: Stack) -> AsyncIterator[Cli]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    async with served(stack) as url:
        yield Cli({**clean, "TEMPOFLOW_API_URL": url, "TEMPOFLOW_API_KEY": stack.keys["admin"]})


async def _versions(stack: Stack, key: str) -> list[int]:
    r = await stack.http.get(f"/v1/definitions/{key}/versions", headers=stack.auth())
    assert r.status_code == 200, r.text
    return sorted(v["version"] for v in r.json())


async def test_publish_is_idempotent_and_says_what_changed(
    stack: Stack, cli: Cli, tmp_path: Path
) -> None:
    key = stack.keys["publisher"]  # what a CI job publishing needs, no more

    async def publish(*args: str) -> Out:
        return await cli("publish", *args, TEMPOFLOW_API_KEY=key)

    defs = tmp_path / "definitions"
    defs.mkdir()
    (defs / "echo.json").write_text(json.dumps(ECHO))
    (defs / "gated.json").write_text(json.dumps(GATED))
    (defs / "notes.txt").write_text("not a definition")  # a directory means its *.json
    (defs / "echo.scenario.json").write_text("{}")  # scenarios beside them are not published

    out = await publish(str(defs), "--json")
    assert out.code == 0, out.stderr
    doc = out.json()
    assert [(r["key"], r["result"], r["version"]) for r in doc["results"]] == [
        ("echo", "created", 1),
        ("gated", "created", 1),
    ]
    assert doc["summary"] == {"created": 2} and doc["valid"] is True

    # Again, unchanged: no new version, and the table says so per file.
    out = await publish(*sorted(str(p) for p in defs.glob("*.json")))  # definitions/*.json
    assert out.code == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if "json" in line]
    assert len(lines) == 2 and all("unchanged (version 1)" in line for line in lines), out.stdout
    assert await _versions(stack, "echo") == [1] and await _versions(stack, "gated") == [1]

    # One file changed: a new version of that one only.
    changed = {**ECHO, "output": {"done": True}}
    (defs / "echo.json").write_text(json.dumps(changed))
    out = await publish(str(defs), "--json")
    assert out.code == 0, out.stderr
    assert [(r["key"], r["result"], r["version"]) for r in out.json()["results"]] == [
        ("echo", "new_version", 2),
        ("gated", "unchanged", 1),
    ]
    assert await _versions(stack, "echo") == [1, 2]

    # One invalid file: nothing is published (exit 1), every error with its file and path.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"steps": [{"id": "a", "type": "nope"}]}))
    fresh = tmp_path / "fresh.json"
    fresh.write_text(json.dumps(ECHO))
    out = await publish(str(fresh), str(bad), "--json")
    assert out.code == 1
    doc = out.json()
    assert doc["valid"] is False and doc["published"] == []
    assert [r["result"] for r in doc["results"]] == ["valid", "invalid"]
    assert doc["results"][1]["problem"]["code"] == "definition_invalid"
    assert f"{bad}: " in out.stderr and "/steps/0" in out.stderr
    r = await stack.http.get("/v1/definitions/fresh", headers=stack.auth())
    assert r.status_code == 404  # the valid file was not published either

    # --validate-only publishes nothing, even when every file is valid.
    out = await publish(str(fresh), "--validate-only", "--json")
    assert out.code == 0 and out.json()["results"][0]["result"] == "valid"
    r = await stack.http.get("/v1/definitions/fresh", headers=stack.auth())
    assert r.status_code == 404

    # Usage errors: exit 2, one line, no JSON but the error document.
    out = await publish(str(tmp_path / "missing.json"), "--json")
    assert out.code == 2 and out.json()["error"]["exitCode"] == 2
    assert "no such file or directory" in out.stderr
    out = await publish("--key", "k", str(fresh), str(bad))
    assert out.code == 2 and "--key names one definition" in out.stderr


async def test_runs_start_show_list_tail_and_retry(stack: Stack, cli: Cli) -> None:
    await stack.publish("flaky", FLAKY)
    await stack.publish("echo", ECHO)
    ok = await cli("runs", "start", "echo", "--wait", "--json")
    assert ok.code == 0, ok.stderr
    assert ok.json()["status"] == "SUCCEEDED"

    # The smoke run fails: exit 1, the run in the JSON document.
    out = await cli("runs", "start", "flaky", "--wait", "--json")
    assert out.code == 1, out.stderr
    run = out.json()
    assert run["status"] == "FAILED" and run["definition"] == "flaky"

    # tail of a closed run replays its stream and exits by its outcome.
    out = await cli("tail", run["id"], "--json")
    assert out.code == 1, out.stderr
    doc = out.json()
    assert doc["status"] == "FAILED"
    kinds = [e["event"] for e in doc["events"]]
    assert kinds[-1] == "run.status" and "step.failed" in kinds
    assert [e["data"]["path"] for e in doc["events"] if e["event"] == "step.completed"] == [
        "/steps/0"
    ]

    out = await cli("runs", "show", run["id"], "--steps", "--json")
    assert out.code == 1  # shown, and it failed
    shown = out.json()
    assert shown["id"] == run["id"] and shown["status"] == "FAILED"
    assert [(s["stepId"], s["status"]) for s in shown["steps"]] == [
        ("one", "SUCCEEDED"),
        ("two", "FAILED"),
    ]
    human = await cli("runs", "show", run["id"])
    assert human.code == 1 and "FAILED" in human.stdout and "flaky v1" in human.stdout

    dry = await cli("runs", "retry", run["id"], "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert dry.json()["dryRun"] is True and dry.json()["resumeFrom"]["stepPath"] == "/steps/1"
    assert (await stack.run_view(run["id"]))["status"] == "FAILED"
    retried = await cli("runs", "retry", run["id"], "--wait", "--json")
    assert retried.code == 0, retried.stderr
    assert retried.json()["status"] == "SUCCEEDED"
    again = await cli("runs", "retry", run["id"], "--json")
    assert again.code == 1
    assert again.json()["error"]["problem"]["code"] == "retry_not_possible"

    # list: filters, one page with its cursor, or every page with --all.
    out = await cli("runs", "list", "--definition", "flaky", "--json")
    assert out.code == 0 and [r["id"] for r in out.json()["items"]] == [run["id"]]
    page = await cli("runs", "list", "--limit", "1", "--json")
    assert len(page.json()["items"]) == 1 and page.json()["nextCursor"]
    every = await cli("runs", "list", "--limit", "1", "--all", "--json")
    assert {r["id"] for r in every.json()["items"]} == {run["id"], ok.json()["id"]}
    assert every.json()["nextCursor"] is None
    table = await cli("runs", "list", "--status", "SUCCEEDED")
    assert table.code == 0 and run["id"] in table.stdout and "SUCCEEDED" in table.stdout

    missing = await cli("runs", "show", "no-such-run", "--json")
    assert missing.code == 1 and missing.json()["error"]["problem"]["code"] == "run_not_found"
    assert missing.stderr.startswith("tempoflow: HTTP 404 run_not_found")


async def test_tail_follows_a_live_run_to_its_end(stack: Stack, cli: Cli) -> None:
    await stack.publish("gated", GATED)
    await stack.publish("beat", HEARTBEAT)

    run = await stack.start("gated")
    tail = await cli.start("tail", run["id"], "--json")
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 60)
    # Giving up on a run that has not closed: exit 1, with what was seen so far.
    late = await cli("tail", run["id"], "--timeout", "2", "--json")
    assert late.code == 1, late.stderr
    assert "has not closed after 2 s (resume with --after " in late.stderr
    assert late.json()["events"][0]["data"]["status"] == "RUNNING"
    assert tail.returncode is None  # still following: the run has not ended
    stack.effects.release[run["id"]].set()
    out = await finish(tail)
    assert out.code == 0, out.stderr
    doc = out.json()
    assert doc["status"] == "SUCCEEDED"
    kinds = [e["event"] for e in doc["events"]]
    assert kinds[0] == "run.status" and kinds[-1] == "run.status"
    assert "step.started" in kinds and "step.completed" in kinds

    # A run cancelled while tailed: tail (human lines) ends with exit 1.
    run = await stack.start("beat")
    tail = await cli.start("tail", run["id"])
    await asyncio.wait_for(stack.effects.reached[run["id"]].wait(), 60)
    out = await cli("runs", "cancel", run["id"], "--wait", "--json")
    assert out.code == 0, out.stderr
    assert out.json()["status"] == "CANCELED"
    tailed = await finish(tail)
    assert tailed.code == 1, tailed.stderr
    assert "step.started" in tailed.stdout and "/steps/0" in tailed.stdout
    assert tailed.stdout.strip().splitlines()[-1].split() == ["run", "CANCELED"]

    # Cancelling it again is refused: the run has ended (exit 1, the problem's code).
    out = await cli("runs", "cancel", run["id"], "--json")
    assert out.code == 1 and out.json()["error"]["problem"]["code"] == "cancel_failed"


async def test_events_send_reaches_the_waiting_run(stack: Stack, cli: Cli) -> None:
    r = await stack.http.put(
        f"/v1/event-types/{PAID}",
        headers=stack.auth(),
        json={"correlation": {"paths": ["/payload/orderId"]}},
    )
    assert r.status_code in (200, 201), r.text
    await stack.publish("wait-payment", WAIT_PAYMENT)
    run = await stack.start("wait-payment", {"orderId": "o-7"})
    await until(lambda: _waiting(stack, run["id"]))

    payload = json.dumps({"orderId": "o-7", "amount": 12})
    out = await cli(
        "events", "send", PAID, "--payload", payload, "--id", "pay-7", "--wait", "--json"
    )
    assert out.code == 0, out.stderr
    event = out.json()
    assert event["id"] == "pay-7" and event["correlationKey"] == "o-7"
    assert [(d["runId"], d["status"]) for d in event["deliveries"]] == [(run["id"], "APPLIED")]
    shown = await cli("runs", "show", run["id"], "--wait", "--json")
    assert shown.code == 0 and shown.json()["output"] == {"amount": 12}

    # The same id again: a duplicate, nothing delivered twice; human output says so.
    again = await cli("events", "send", PAID, "--payload", payload, "--id", "pay-7")
    assert again.code == 0, again.stderr
    assert "duplicate" in again.stdout and "pay-7" in again.stdout
    refused = await cli("events", "send", "Bad Name!", "--json")
    assert refused.code == 1 and refused.json()["error"]["status"] == 422
    usage = await cli("events", "send", PAID, "--payload", "{not json")
    assert usage.code == 2 and "--payload is not JSON" in usage.stderr


async def _waiting(stack: Stack, run_id: str) -> bool:
    return (await stack.run_view(run_id))["status"] == "WAITING"


async def test_exit_codes_for_usage_refusal_and_unreachable_server(stack: Stack, cli: Cli) -> None:
    out = await cli("runs", "list", "--status", "NOPE")
    assert out.code == 2 and "invalid choice" in out.stderr  # argparse: usage error
    out = await cli("runs", "list", "--json", TEMPOFLOW_API_KEY="tf_wrong")
    assert out.code == 1 and out.json()["error"]["status"] == 401
    with closed_port() as port:  # nothing listens there, nor can start to
        for args in (["runs", "list"], ["tail", "r1"], ["events", "send", PAID]):
            out = await cli(*args, "--json", TEMPOFLOW_API_URL=f"http://127.0.0.1:{port}")
            assert out.code == 3, (args, out.stderr)
            error = out.json()["error"]
            assert error["exitCode"] == 3 and "cannot reach the API" in error["message"]
            assert "Traceback" not in out.stderr

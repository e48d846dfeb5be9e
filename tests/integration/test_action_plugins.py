"""Action plugins on the real stack: declared and definition defaults in Temporal history,
publish-time input and role checks, `GET /v1/actions` with a running `tempoflow worker`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.plugins import load_plugins
from activities.registry import ActionContext, ActionRegistry
from app.main import create_app
from launcher.worker import create_worker
from tempoflow.definition.model import RetryPolicy, Timeouts
from tempoflow.settings import Settings
from tests.actions import Anything
from tests.integration.conftest import make_keys, until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Amount(BaseModel):
    amount: int
    currency: str
    token: str = ""


async def echo(data: BaseModel, ctx: ActionContext) -> Anything:
    return Anything(**data.model_dump())


def registry() -> ActionRegistry:
    reg = load_plugins().registry  # built-ins and the installed example plugin
    reg.action(
        "test.declared",
        input_model=Anything,
        output_model=Anything,
        retry=RetryPolicy(maxAttempts=6, initialInterval=timedelta(seconds=3)),
        timeouts=Timeouts(startToClose=timedelta(seconds=40), heartbeat=timedelta(seconds=8)),
    )(echo)
    reg.action("test.amount", input_model=Amount, output_model=Anything)(echo)
    reg.action("test.plain", input_model=Anything, output_model=Anything)(echo)
    reg.action(
        "test.restricted", input_model=Anything, output_model=Anything, publish_roles=["admin"]
    )(echo)
    return reg


class Api:
    def __init__(self, http: httpx.AsyncClient, keys: dict[str, str], client: Client) -> None:
        self.http, self.keys, self.client = http, keys, client

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def publish(self, key: str, definition: dict[str, Any], role: str = "admin") -> Any:
        r = await self.http.put(
            f"/v1/definitions/{key}",
            headers=self.auth(role),
            json={"name": key, "definition": definition},
        )
        assert r.status_code in (200, 201), r.text
        return await self.http.post(f"/v1/definitions/{key}/publish", headers=self.auth(role))

    async def run(self, key: str, data: Any = None) -> dict[str, Any]:
        r = await self.http.post(
            "/v1/runs", headers=self.auth(), json={"definition": key, "input": data or {}}
        )
        assert r.status_code == 201, r.text
        run = dict(r.json())
        result = await self.client.get_workflow_handle(run["workflowId"]).result()
        run["output"] = result["output"]
        return run


@contextlib.asynccontextmanager
async def api(
    database_url: str,
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    *,
    task_queue: str,
    with_worker: bool,
    **settings: Any,
) -> AsyncIterator[Api]:
    config = Settings(
        environment="test", database_url=database_url, task_queue=task_queue, **settings
    )
    reg = registry()
    keys = await make_keys(sessions, f"t{uuid.uuid4().hex[:10]}", config.api_key_pepper)
    app = create_app(config, registry=reg, temporal=client)
    async with contextlib.AsyncExitStack() as stack:
        if with_worker:
            await stack.enter_async_context(
                create_worker(client, task_queue=task_queue, registry=reg, sessions=sessions)
            )
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tempoflow")
        )
        yield Api(http, keys, client)


@pytest.fixture
async def stack(
    database_url: str, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Api]:
    async with api(
        database_url, temporal_client, sessions, task_queue=f"tq-{uuid.uuid4()}", with_worker=True
    ) as opened:
        yield opened


async def scheduled(client: Client, workflow_id: str) -> dict[str, Any]:
    """Per step id: what its activity was scheduled with, read from Temporal history."""
    found = {}
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name.startswith("tempoflow."):
                continue
            found[event.user_metadata.summary.data.decode().strip('"')] = {
                "maxAttempts": attrs.retry_policy.maximum_attempts,
                "initialInterval": attrs.retry_policy.initial_interval.ToTimedelta(),
                "startToClose": attrs.start_to_close_timeout.ToTimedelta(),
                "heartbeat": attrs.heartbeat_timeout.ToTimedelta(),
            }
    return found


async def test_defaults_step_over_definition_over_action_over_built_in(stack: Api) -> None:
    with_defaults = {
        "actionDefaults": {"retry": {"maxAttempts": 4}, "timeouts": {"startToClose": "PT25S"}},
        "steps": [
            {"id": "a", "type": "action.call", "action": "test.declared"},
            {
                "id": "b",
                "type": "action.call",
                "action": "test.declared",
                "retry": {"maxAttempts": 2},
                "timeouts": {"startToClose": "PT10S"},
            },
            {"id": "c", "type": "action.call", "action": "test.plain"},
        ],
    }
    r = await stack.publish("defaults", with_defaults)
    assert r.status_code == 201, r.text
    # The action's declared defaults are pinned with the version.
    assert r.json()["actionDefaults"] == {
        "test.declared": {
            "retry": {"maxAttempts": 6, "initialInterval": "PT3S"},
            "timeouts": {"startToClose": "PT40S", "heartbeat": "PT8S"},
        }
    }
    run = await stack.run("defaults")
    got = await scheduled(stack.client, run["workflowId"])
    s = timedelta(seconds=1)
    assert got == {
        # definition: maxAttempts, startToClose; declaration: initialInterval, heartbeat
        "a": {
            "maxAttempts": 4,
            "initialInterval": 3 * s,
            "startToClose": 25 * s,
            "heartbeat": 8 * s,
        },
        # the step's own fields win; the rest still falls through
        "b": {
            "maxAttempts": 2,
            "initialInterval": 3 * s,
            "startToClose": 10 * s,
            "heartbeat": 8 * s,
        },
        # no declaration: definition, then built-in
        "c": {"maxAttempts": 4, "initialInterval": s, "startToClose": 25 * s, "heartbeat": 0 * s},
    }

    expected_plain = {
        "a": {
            "maxAttempts": 6,
            "initialInterval": 3 * s,
            "startToClose": 40 * s,
            "heartbeat": 8 * s,
        },
        "c": {"maxAttempts": 3, "initialInterval": s, "startToClose": 60 * s, "heartbeat": 0 * s},
    }
    plain = {"steps": [with_defaults["steps"][0], with_defaults["steps"][2]]}
    assert (await stack.publish("plain", plain)).status_code == 201
    got = await scheduled(stack.client, (await stack.run("plain"))["workflowId"])
    assert got == expected_plain
    # A child run gets the pinned defaults of the version it runs (not the parent's).
    parent = {
        "actionDefaults": {"retry": {"maxAttempts": 9}},
        "steps": [{"id": "child", "type": "control.callWorkflow", "definition": "plain"}],
    }
    assert (await stack.publish("parent", parent)).status_code == 201
    run = await stack.run("parent")
    child_id = None
    async for event in stack.client.get_workflow_handle(run["workflowId"]).fetch_history_events():
        if event.HasField("child_workflow_execution_started_event_attributes"):
            attrs = event.child_workflow_execution_started_event_attributes
            child_id = attrs.workflow_execution.workflow_id
    assert child_id is not None
    assert await scheduled(stack.client, child_id) == expected_plain


async def test_publish_checks_literal_inputs_and_skips_run_time_values(stack: Api) -> None:
    bad = {
        "steps": [
            {"id": "a", "type": "action.call", "action": "test.amount", "input": {"amount": "ten"}},
            {"id": "b", "type": "bogus"},
        ]
    }
    r = await stack.publish("inputs", bad)
    assert r.status_code == 422, r.text
    errors = {(e["path"], e["code"]) for e in r.json()["errors"]}
    assert ("/steps/0/input/amount", "action.input.type") in errors
    assert ("/steps/0/input", "action.input.required") in errors  # currency is missing
    assert any(p.startswith("/steps/1") for p, _ in errors)  # reported together

    good = {
        "steps": [
            {
                "id": "a",
                "type": "action.call",
                "action": "test.amount",
                "input": {
                    "amount": {"$expr": "payload.amount"},
                    "currency": "EUR",
                    "token": {"$secret": "psp-token"},
                },
                "output": "paid",
            }
        ]
    }
    r = await stack.publish("inputs", good)
    assert r.status_code == 201, r.text
    # The expression is checked when it runs: the activity validates the resolved input.
    del good["steps"][0]["input"]["token"]  # ($secret resolution is not on this branch)
    assert (await stack.publish("inputs-run", good)).status_code == 201
    run = await stack.run("inputs-run", {"amount": 12})
    assert run["output"]["paid"]["amount"] == 12


async def test_publish_roles_restrict_who_may_publish(stack: Api) -> None:
    body = {
        "steps": [
            {"id": "a", "type": "action.call", "action": "core.noop"},
            {"id": "b", "type": "action.call", "action": "test.restricted"},
        ]
    }
    r = await stack.publish("restricted", body, role="publisher")
    assert r.status_code == 403, r.text
    # Validation says so ahead, as a warning for this key.
    r2 = await stack.http.post(
        "/v1/definitions/restricted/validate", headers=stack.auth("publisher")
    )
    assert r2.status_code == 200, r2.text
    assert [(w["path"], w["code"]) for w in r2.json()["warnings"]] == [
        ("/steps/1/action", "action_not_permitted")
    ]
    problem = r.json()
    assert problem["code"] == "action_not_permitted"
    assert [e["path"] for e in problem["errors"]] == ["/steps/1/action"]
    assert (await stack.publish("restricted", body, role="admin")).status_code == 201


@pytest.mark.timeout(120)
async def test_actions_show_which_a_running_worker_has(
    database_url: str,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    """A real `tempoflow worker` process (the example plugin through its entry point, one
    more module through TEMPOFLOW_ACTION_MODULES) heartbeats its action set."""
    task_queue = f"tq-{uuid.uuid4()}"
    (tmp_path / "tf_worker_only.py").write_text(
        "from tests.actions import Anything\n"
        "async def ping(data, ctx):\n    return Anything(pong=True)\n"
        "def register(registry):\n"
        "    registry.action('workeronly.ping', input_model=Anything,\n"
        "                    output_model=Anything)(ping)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    env.update(
        TEMPOFLOW_DATABASE_URL=database_url,
        TEMPOFLOW_TEMPORAL_ADDRESS=temporal_client.service_client.config.target_host,
        TEMPOFLOW_TASK_QUEUE=task_queue,
        TEMPOFLOW_WORKER_HEARTBEAT_SECONDS="0.3",
        TEMPOFLOW_ACTION_MODULES="tf_worker_only",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
    )
    async with api(
        database_url,
        temporal_client,
        sessions,
        task_queue=task_queue,
        with_worker=False,
        worker_presence_seconds=2.0,
    ) as stack:

        async def actions() -> dict[str, Any]:
            r = await stack.http.get("/v1/actions", headers=stack.auth("operator"))
            assert r.status_code == 200, r.text
            return {a["name"]: a for a in r.json()}

        before = await actions()
        assert before["example.greet"]["workers"] == {
            "available": False,
            "lastSeen": None,
            "versions": [],
        }
        assert before["example.greet"]["sideEffects"] is False
        assert before["example.greet"]["retry"]["maxAttempts"] == 2
        assert before["test.restricted"]["publishRoles"] == ["admin"]
        assert "workeronly.ping" not in before

        log = tmp_path / "worker.log"
        with log.open("w") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "launcher.cli",
                "worker",
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:

            async def seen() -> dict[str, Any] | None:
                found = await actions()
                return found if found["example.greet"]["workers"]["available"] else None

            found = await until(seen, within=60)
            assert found["example.greet"]["workers"]["versions"] == [1]
            assert found["core.noop"]["workers"]["available"] is True
            # Only the API's own test actions are missing on that worker.
            assert found["test.declared"]["workers"]["available"] is False
            # What only the worker has is listed, as not registered with the API.
            assert found["workeronly.ping"]["registered"] is False
            assert found["workeronly.ping"]["workers"]["available"] is True
            assert found["workeronly.ping"]["inputSchema"] is None

            # The worker process runs the plugin's action.
            body = {
                "steps": [
                    {
                        "id": "hi",
                        "type": "action.call",
                        "action": "example.greet",
                        "input": {"name": "Ada"},
                        "output": "hi",
                    }
                ]
            }
            assert (await stack.publish("greet", body)).status_code == 201
            run = await stack.run("greet")
            assert run["output"]["hi"] == {"greeting": "Hello, Ada!"}
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0
        text = log.read_text()
        assert re.search(
            r"loaded \d+ actions: core\.log@1 \(builtin\), core\.noop@1 \(builtin\)", text
        )
        assert "example.greet@1 (entry point 'example'" in text
        assert "workeronly.ping@1 (module 'tf_worker_only')" in text

        # A stopped worker is no longer available (its last heartbeat stays visible).
        after = (await actions())["example.greet"]["workers"]
        assert after["available"] is False and after["lastSeen"] is not None

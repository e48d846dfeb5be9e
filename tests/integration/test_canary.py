"""A canary secret goes through actions (successes, failures, retries, caught errors) and
is then looked for everywhere: Temporal history, every PostgreSQL table, the logs.

To cover another action (``http.request``, ``webhook.send``, ``email.send``…), add a
:class:`Case` to ``CASES`` (or build one in a fixture with the receiver it needs): its
steps use ``{"$secret": CANARY_NAME}`` wherever the action takes a credential or text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from temporalio.client import WorkflowFailureError

from activities.registry import ActionContext, ActionError
from tests.actions import Anything
from tests.integration.conftest import Stack, until
from tests.integration.test_email import Sink
from tests.receiver import Receiver

CANARY_NAME = "canary"
REF = {"$secret": CANARY_NAME}
MARK = f"[secret:{CANARY_NAME}]"
FAST = {"maxAttempts": 2, "initialInterval": "PT0.05S"}


@dataclass(frozen=True)
class Case:
    key: str
    steps: list[dict[str, Any]]
    succeeds: bool = True


def call(action: str, input: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "s", "type": "action.call", "action": action, "input": input, **extra}


def caught(step: dict[str, Any]) -> list[dict[str, Any]]:
    """``step`` in a try/catch that keeps the error in a variable (run output)."""
    return [
        {
            "id": "t",
            "type": "control.tryCatch",
            "try": [step],
            "catch": [
                {
                    "id": "keep",
                    "type": "transform.assign",
                    "assign": {"caught": "error"},
                }
            ],
        }
    ]


CASES = [
    Case("noop", [call("core.noop", {"token": REF, "nested": [{"k": REF}]}, output="out")]),
    Case("log", [call("core.log", {"message": REF, "fields": {"password": REF}})]),
    Case("fail", [call("test.fail", {"message": REF, "type": "Declined"})], succeeds=False),
    Case(
        "fail-retried",
        [call("test.fail", {"message": REF, "retryable": True}, retry=FAST)],
        succeeds=False,
    ),
    Case("fail-caught", caught(call("test.fail", {"message": REF, "type": "Declined"}))),
    # The secret where a boolean belongs: pydantic's error details echo the input.
    Case("bad-input", caught(call("test.fail", {"retryable": REF}))),
    Case("raises", [call("canary.raise", {"token": REF}, retry=FAST)], succeeds=False),
    Case("leaky", [call("canary.leaky", {"token": REF}, output="out")]),
]


def world_cases(receiver: str, smtp_port: int) -> list[Case]:
    """The actions that touch the world, with the canary where credentials go: headers
    the receiver echoes back, a webhook signing secret, SMTP text and password."""
    smtp = {"host": "127.0.0.1", "port": smtp_port, "tls": "none", "timeoutSeconds": 5}
    mail = {"from": "ops@example.test", "to": ["a@example.test"], "subject": "s"}
    return [
        Case(
            "http",
            [
                call(
                    "http.request",
                    {
                        "method": "POST",
                        "url": f"{receiver}/json",
                        "headers": {"Authorization": REF},
                        "json": {"token": REF},
                    },
                    output="out",
                )
            ],
        ),
        Case(
            "http-failing",
            [
                call(
                    "http.request",
                    {"url": f"{receiver}/status/503", "headers": {"X-Token": REF}},
                    retry=FAST,
                )
            ],
            succeeds=False,
        ),
        Case(
            "webhook-bad-secret",
            caught(
                call("webhook.send", {"url": f"{receiver}/webhook", "payload": {}, "secret": REF})
            ),
        ),
        Case("email", [call("email.send", {**mail, "text": REF, "smtp": smtp}, output="out")]),
        Case(
            "email-password",
            caught(
                call(
                    "email.send",
                    {**mail, "text": "x", "smtp": {**smtp, "username": "u", "password": REF}},
                    retry=FAST,
                )
            ),
        ),
    ]


def register_canary_actions(stack: Stack, seen: list[str]) -> None:
    registry = stack.worker_registry

    @registry.action("canary.raise", input_model=Anything, output_model=Anything)
    async def raises(data: Anything, ctx: ActionContext) -> Anything:
        token = (data.model_extra or {})["token"]
        seen.append(token)
        raise KeyError(f"no account for {token}")

    @registry.action("canary.leaky", input_model=Anything, output_model=Anything)
    async def leaky(data: Anything, ctx: ActionContext) -> Anything:
        """Puts the value everywhere an action can: logs (message, args, extra,
        exception text), heartbeat details, output (as it is, inside text, as a key)."""
        token = (data.model_extra or {})["token"]
        seen.append(token)
        ctx.logger.warning("token is %s", token, extra={"tempoflow": {"token": token}})
        logging.getLogger("some.library").info(f"request with {token}")
        try:
            raise ActionError("Inner", f"inner {token}")
        except ActionError:
            ctx.logger.exception("handled")
        ctx.heartbeat({"token": token})
        return Anything(token=token, text=f"Bearer {token}", keyed={token: 1})


async def table_dump(stack: Stack) -> dict[str, str]:
    """Every row of every table in the schema, as text."""
    async with stack.sessions() as session:
        tables = (
            await session.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "ORDER BY tablename"
                )
            )
        ).scalars()
        dump = {}
        for table in list(tables):
            rows = await session.execute(text(f'SELECT t::text FROM "{table}" t'))
            dump[table] = "\n".join(r[0] for r in rows)
    return dump


def forms(value: str) -> list[str]:
    """The value and the escaped forms it would take inside JSON or a repr."""
    return [value, json.dumps(value)[1:-1], repr(value)[1:-1]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver("127.0.0.2") as served:
        yield served


@pytest.fixture
def smtp_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


async def test_canary_secret_is_nowhere(
    stack: Stack, caplog: pytest.LogCaptureFixture, receiver: Receiver, smtp_port: int
) -> None:
    caplog.set_level(logging.DEBUG)
    r = await stack.http.put(
        "/v1/egress-rules",
        headers=stack.auth(),
        json={"allow": ["127.0.0.2", "127.0.0.1"]},  # receiver, SMTP
    )
    assert r.status_code == 200, r.text
    cases = [*CASES, *world_cases(f"http://127.0.0.2:{receiver.port}", smtp_port)]
    canary = f"canary-{uuid.uuid4().hex}"
    seen: list[str] = []
    register_canary_actions(stack, seen)
    r = await stack.http.put(
        f"/v1/secrets/{CANARY_NAME}", headers=stack.auth(), json={"value": canary}
    )
    assert r.status_code == 201
    runs = {}
    for case in cases:
        await stack.publish(case.key, {"steps": case.steps})
        runs[case.key] = await stack.start(case.key)
    outcomes = {}
    for case in cases:
        try:
            outcomes[case.key] = await asyncio.wait_for(stack.result(runs[case.key]), 60)
        except WorkflowFailureError as err:
            outcomes[case.key] = err
        assert isinstance(outcomes[case.key], dict) is case.succeeds, (case.key, outcomes)

    # The handlers did get the value (so finding it nowhere means something).
    assert canary in seen
    assert outcomes["noop"]["output"]["out"] == {"token": MARK, "nested": [{"k": MARK}]}
    assert outcomes["leaky"]["output"]["out"] == {
        "token": MARK,
        "text": f"Bearer {MARK}",
        "keyed": {MARK: 1},
    }
    echoed = outcomes["http"]["output"]["out"]["body"]
    assert MARK in echoed["body"], echoed  # the receiver got the value and echoed it
    assert receiver.requests and any(canary in str(r) for r in receiver.requests)
    caught_error = outcomes["fail-caught"]["output"]["caught"]
    assert caught_error["type"] == "Declined" and caught_error["message"] == MARK
    assert outcomes["bad-input"]["output"]["caught"]["type"] == "ActionInputError"
    fail = await stack.run_view(runs["fail"]["id"])
    assert fail["error"]["message"] == MARK
    raised = await stack.run_view(runs["raises"]["id"])
    assert raised["error"]["type"] == "KeyError" and MARK in raised["error"]["message"]

    # Temporal history of every run, as raw protobuf bytes (payloads are not base64 there).
    for key, run in runs.items():
        history = await stack.client.get_workflow_handle(run["workflowId"]).fetch_history()
        raw = b"".join(e.SerializeToString() for e in history.events)
        for form in forms(canary):
            assert form.encode() not in raw, f"canary in the history of {key}"
        assert b'{"$secret":"canary"}' in raw, key  # the reference did travel

    # Every PostgreSQL table (the API and runs are done writing once results are in;
    # wait for the closing projections).
    async def projected() -> bool:
        views = [await stack.run_view(run["id"]) for run in runs.values()]
        return all(v["status"] in ("SUCCEEDED", "FAILED") for v in views)

    await until(projected)
    dump = await table_dump(stack)
    assert {"runs", "steps", "action_invocations", "action_attempts", "secrets"} <= set(dump)
    assert MARK in dump["steps"] and MARK in dump["action_attempts"]
    for table, rows in dump.items():
        for form in forms(canary):
            assert form not in rows, f"canary in table {table}"

    # Every API view of the runs.
    for run in runs.values():
        for suffix in ("", "/steps", "/invocations", "/waits"):
            r = await stack.http.get(f"/v1/runs/{run['id']}{suffix}", headers=stack.auth())
            assert r.status_code == 200
            for form in forms(canary):
                assert form not in r.text, suffix

    # The logs (but the test SMTP server's own, "mail.log": the receiving side sees the
    # mail it was sent, as any outside server would).
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert any(r.name.startswith("mail.log") for r in caplog.records)  # it did log
    assert any(MARK in r.getMessage() for r in ours)  # core.log and leaky logged
    for record in ours:
        for form in forms(canary):
            assert form not in record.getMessage(), record
        assert canary not in str(record.__dict__), record

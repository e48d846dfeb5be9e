"""Notification policies on the real stack: email to an SMTP server (aiosmtpd) and
webhooks to an HTTP receiver, both on loopback and allow-listed through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError

from tests.integration.conftest import Stack, until
from tests.integration.test_email import Sink, free_port
from tests.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver("127.0.0.2") as server:
        yield server


@pytest.fixture(autouse=True)
async def allowed(stack: Stack) -> None:
    """The tests' servers are on loopback, which the tenant must allow-list; the webhook
    signing secret is in the tenant's store."""
    r = await stack.http.put(
        "/v1/egress-rules", headers=stack.auth(), json={"allow": ["127.0.0.1", "127.0.0.2"]}
    )
    assert r.status_code == 200, r.text
    r = await stack.http.put("/v1/secrets/hook", headers=stack.auth(), json={"value": SECRET})
    assert r.status_code in (200, 201), r.text


def email(port: int, **template: Any) -> dict[str, Any]:
    smtp = {"host": "127.0.0.1", "port": port, "tls": "none", "timeoutSeconds": 5}
    return {"from": "flows@example.com", "text": "see the run", **template, "smtp": smtp}


def hook(url: str, body: Any) -> dict[str, Any]:
    return {"body": body, "secret": {"$secret": "hook"}}


async def log(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    r = await stack.http.get(f"/v1/runs/{run_id}/notifications", headers=stack.auth("operator"))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_step_and_run_notifications_are_sent_and_logged(
    stack: Stack, sink: tuple[Sink, int], receiver: Receiver
) -> None:
    smtp, port = sink
    url = receiver.url("/json")
    definition = {
        "notify": [
            {
                "on": "started",
                "channel": "webhook",
                "to": url,
                "template": hook(url, {"run": {"$expr": "meta.runId"}, "event": "started"}),
            },
            {
                "on": "completed",
                "channel": "webhook",
                "to": url,
                "template": hook(
                    url,
                    {
                        "event": {"$expr": "notification.event"},
                        "output": {"$expr": "notification.output"},
                    },
                ),
            },
        ],
        "steps": [
            {
                "id": "charge",
                "type": "action.call",
                "action": "test.echo",
                "input": {"amount": {"$expr": "payload.amount"}},
                "output": "charge",
                "notify": [
                    {
                        "on": "completed",
                        "channel": "email",
                        "to": {"$expr": "payload.email"},
                        "template": email(
                            port,
                            subject={
                                "$expr": "'Charged ' & $string(notification.output.amount)"
                                " & ' in step ' & notification.step.id"
                            },
                        ),
                    }
                ],
            },
            {
                "id": "done",
                "type": "control.return",
                "output": {"amount": {"$expr": "vars.charge.amount"}},
            },
        ],
    }
    await stack.publish("notified", definition)
    run = await stack.start("notified", {"amount": 5, "email": "ada@example.com"})
    assert await stack.result(run) == {"output": {"amount": 5}}

    # Deliveries end before the run does: the log is complete once it has closed.
    entries = await log(stack, run["id"])
    assert [
        (e["policy"], e["event"], e["channel"], e["status"], e["attempts"]) for e in entries
    ] == [
        ("/notify/0", "started", "webhook", "SENT", 1),
        ("/steps/0/notify/0", "completed", "email", "SENT", 1),
        ("/notify/1", "completed", "webhook", "SENT", 1),
    ]
    by_channel = {e["channel"] + e["event"]: e for e in entries}
    (received,) = smtp.received
    envelope, message = received
    assert envelope.rcpt_tos == ["ada@example.com"]
    assert message["Subject"] == "Charged 5 in step charge"
    assert message["Message-ID"] == by_channel["emailcompleted"]["providerMessageId"]
    assert by_channel["emailcompleted"]["stepPath"] == "/steps/0"
    assert by_channel["emailcompleted"]["recipient"] == "ada@example.com"

    calls = receiver.at("/json")
    assert len(calls) == 2
    bodies = {}
    for call in calls:
        body = Webhook(SECRET).verify(call.body, call.headers)  # signed with the secret
        bodies[body["event"]] = (body, call.headers["webhook-id"])
    assert bodies["started"][0] == {"run": run["id"], "event": "started"}
    assert bodies["completed"][0] == {"event": "completed", "output": {"amount": 5}}
    assert bodies["started"][1] == by_channel["webhookstarted"]["providerMessageId"]
    # the secret's value is nowhere in the run's history
    history = await stack.client.get_workflow_handle(run["workflowId"]).fetch_history()
    assert SECRET not in history.to_json()


async def test_a_failing_channel_never_fails_the_run_and_an_operator_resends(
    stack: Stack, sink: tuple[Sink, int], receiver: Receiver
) -> None:
    _, port = sink
    once = {"maxAttempts": 1}
    definition = {
        "steps": [
            {
                "id": "work",
                "type": "action.call",
                "action": "test.echo",
                "input": {},
                "notify": [
                    {
                        # 500 on the first call (the only attempt), 200 afterwards
                        "on": "completed",
                        "channel": "webhook",
                        "to": receiver.url("/webhook?key=resend"),
                        "template": hook("", {"step": "work"}),
                        "retry": once,
                    },
                    {
                        # the server refuses the mailbox for good (550)
                        "on": "completed",
                        "channel": "email",
                        "to": "nobody@example.com",
                        "template": email(port, subject="x"),
                    },
                    {
                        "on": "completed",
                        "channel": "email",
                        "to": "ada@example.com",
                        "template": {"subject": {"$expr": "$error('cannot render')"}, "text": "x"},
                    },
                ],
            }
        ]
    }
    await stack.publish("failing", definition)
    run = await stack.start("failing")
    await stack.result(run)  # succeeded
    assert (await stack.run_view(run["id"]))["status"] == "SUCCEEDED"
    entries = {e["policy"]: e for e in await log(stack, run["id"])}
    webhook = entries["/steps/0/notify/0"]
    assert (webhook["status"], webhook["attempts"]) == ("FAILED", 1)
    assert webhook["error"]["type"] == "HttpStatusError"
    rejected = entries["/steps/0/notify/1"]
    assert (rejected["status"], rejected["attempts"]) == ("FAILED", 1)  # not retried
    assert rejected["error"]["type"] == "SmtpRejected"
    broken = entries["/steps/0/notify/2"]
    assert (broken["status"], broken["recipient"]) == ("FAILED", None)  # nothing rendered
    assert broken["error"]["type"] == "NotificationRenderError"

    # Resend: operator only, audited, a new entry with a key (and webhook-id) of its own.
    path = f"/v1/notifications/{webhook['id']}/resend"
    r = await stack.http.post(path, headers=stack.auth("publisher"))
    assert r.status_code == 403, r.text
    r = await stack.http.post("/v1/notifications/nope/resend", headers=stack.auth("operator"))
    assert r.status_code == 404 and r.json()["code"] == "notification_not_found"
    r = await stack.http.post(
        f"/v1/notifications/{broken['id']}/resend", headers=stack.auth("operator")
    )
    assert r.status_code == 409 and r.json()["code"] == "notification_unrenderable"
    r = await stack.http.post(path, headers=stack.auth("operator"))
    assert r.status_code == 202, r.text
    resent = r.json()
    assert resent["resendOf"] == webhook["id"] and resent["id"] != webhook["id"]

    async def sent() -> dict[str, Any] | None:
        found = [e for e in await log(stack, run["id"]) if e["id"] == resent["id"]]
        return found[0] if found and found[0]["status"] == "SENT" else None

    entry = await until(sent)
    assert entry["resendOf"] == webhook["id"] and entry["attempts"] == 1
    calls = receiver.at("/webhook")
    assert len(calls) == 2
    assert calls[1].headers["webhook-id"] == entry["providerMessageId"]
    assert calls[0].headers["webhook-id"] != calls[1].headers["webhook-id"]
    assert json.loads(calls[1].body) == {"step": "work"}
    r = await stack.http.get(
        "/v1/audit", headers=stack.auth(), params={"action": "notification.resend"}
    )
    assert r.status_code == 200, r.text
    (audited,) = r.json()["items"]
    assert audited["target"] == webhook["id"]
    assert audited["details"]["resend"] == resent["id"]


async def test_a_replayed_notification_is_never_sent_twice(
    stack: Stack, receiver: Receiver
) -> None:
    """A retry of the run (a Temporal reset) schedules the notification again with the
    same idempotency key: the activity finds it SENT and sends nothing."""
    url = receiver.url("/json")
    definition = {
        "steps": [
            {
                "id": "first",
                "type": "action.call",
                "action": "test.echo",
                "input": {},
                "notify": [
                    {
                        "on": "completed",
                        "channel": "webhook",
                        "to": url,
                        "template": hook(url, {"n": 1}),
                    }
                ],
            },
            {"id": "boom", "type": "action.call", "action": "test.fail", "input": {}},
        ]
    }
    await stack.publish("replayed", definition)
    run = await stack.start("replayed")
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    assert len(receiver.at("/json")) == 1
    r = await stack.http.post(f"/v1/runs/{run['id']}/retry", headers=stack.auth("operator"))
    assert r.status_code == 200, r.text
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)  # the reset execution fails at the same step again
    handle = stack.client.get_workflow_handle(run["workflowId"])
    history = await handle.fetch_history()
    notified = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and b"DEDUPLICATED" in e.activity_task_completed_event_attributes.result.payloads[0].data
    ]
    assert len(notified) == 1  # the notification ran again in the new execution...
    assert len(receiver.at("/json")) == 1  # ...and sent nothing
    (entry,) = await log(stack, run["id"])
    assert (entry["status"], entry["attempts"]) == ("SENT", 1)


async def test_a_run_without_notify_schedules_nothing_for_it(stack: Stack) -> None:
    definition = {"steps": [{"id": "a", "type": "action.call", "action": "test.echo", "input": {}}]}
    await stack.publish("quiet", definition)
    run = await stack.start("quiet")
    await stack.result(run)
    history = await stack.client.get_workflow_handle(run["workflowId"]).fetch_history()
    names = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert "tempoflow.notify" not in names
    assert await log(stack, run["id"]) == []


async def test_waiting_notifies_the_step_and_the_run_while_the_run_waits(
    stack: Stack, sink: tuple[Sink, int], receiver: Receiver
) -> None:
    """``waiting``: sent while the run waits (before anyone completes the task), from
    the step's policy and the definition's."""
    smtp, port = sink
    url = receiver.url("/json")
    definition = {
        "notify": [
            {
                "on": "waiting",
                "channel": "email",
                "to": "ops@example.com",
                "template": email(port, subject={"$expr": "'Waiting at ' & notification.step.id"}),
            }
        ],
        "steps": [
            {
                "id": "approve",
                "type": "human.task",
                "title": "Approve",
                "form": {"type": "object"},
                "notify": [
                    {
                        "on": "waiting",
                        "channel": "webhook",
                        "to": url,
                        "template": hook(url, {"task": {"$expr": "notification.step.path"}}),
                    }
                ],
            }
        ],
    }
    await stack.publish("approval-notified", definition)
    run = await stack.start("approval-notified")

    async def both_sent() -> list[dict[str, Any]] | None:
        entries = await log(stack, run["id"])
        return (
            entries if len(entries) == 2 and all(e["status"] == "SENT" for e in entries) else None
        )

    entries = await until(both_sent)
    assert {e["policy"] for e in entries} == {"/notify/0", "/steps/0/notify/0"}
    assert all(e["stepPath"] == "/steps/0" for e in entries)
    assert (await stack.run_view(run["id"]))["status"] == "WAITING"  # still waiting
    assert smtp.received[0][1]["Subject"] == "Waiting at approve"
    assert json.loads(receiver.at("/json")[0].body) == {"task": "/steps/0"}

    r = await stack.http.get(f"/v1/tasks?runId={run['id']}", headers=stack.auth("operator"))
    (task,) = r.json()["items"]
    r = await stack.http.post(
        f"/v1/tasks/{task['id']}/complete", headers=stack.auth("operator"), json={"data": {}}
    )
    assert r.status_code == 200, r.text
    await stack.result(run)
    assert len(await log(stack, run["id"])) == 2  # nothing more

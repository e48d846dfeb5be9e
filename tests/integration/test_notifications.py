"""Notification policies on the real stack: email to an SMTP server (aiosmtpd) and
webhooks to an HTTP receiver, both on loopback and allow-listed through the API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import BaseModel
from standardwebhooks import Webhook
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError

from activities.channels import ChannelMessage, channels_for
from activities.registry import ActionContext, ActionError
from projections import notifications
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
    await stack.record_history(run, "notify_policies")

    # Deliveries end before the run does: the log is complete once it has closed.
    entries = await log(stack, run["id"])
    # The step's and the run's "completed" deliveries run concurrently: either may be first.
    assert sorted(
        (e["policy"], e["event"], e["channel"], e["status"], e["attempts"]) for e in entries
    ) == [
        ("/notify/0", "started", "webhook", "SENT", 1),
        ("/notify/1", "completed", "webhook", "SENT", 1),
        ("/steps/0/notify/0", "completed", "email", "SENT", 1),
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
    await stack.record_history(run, "notify_waiting")
    assert len(await log(stack, run["id"])) == 2  # nothing more


def claim_row(tenant: str, key: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "tenant": tenant,
        "key": key,
        "run_id": "r1",
        "definition_key": "d",
        "policy": "/notify/0",
        "event": "started",
        "channel": "email",
        "request": {},
    }


async def test_the_claim_lets_one_attempt_send_and_never_after_success(stack: Stack) -> None:
    """What makes a retry (or a second, overlapping attempt) never send twice."""
    row = claim_row(stack.tenant, "k1")
    lease = timedelta(minutes=1)
    async with stack.sessions.begin() as s:
        assert (await notifications.claim(s, row, attempt=1, lease=lease)).status == "SEND"
    async with stack.sessions.begin() as s:  # attempt 1's lease is live: attempt 2 waits
        assert (await notifications.claim(s, row, attempt=2, lease=lease)).status == "HELD"
    async with stack.sessions.begin() as s:
        await notifications.record(
            s, stack.tenant, "k1", status="SENT", attempt=1, provider_message_id="<m1>"
        )
    async with stack.sessions.begin() as s:
        again = await notifications.claim(s, row, attempt=3, lease=lease)
    assert (again.status, again.provider_message_id) == ("SENT", "<m1>")
    async with stack.sessions.begin() as s:  # a late failure never overwrites SENT
        await notifications.record(s, stack.tenant, "k1", status="FAILED", attempt=2)
        assert (await notifications.claim(s, row, attempt=4, lease=lease)).status == "SENT"

    # A failed attempt (lease released) or an expired lease: the next attempt sends.
    other = claim_row(stack.tenant, "k2")
    async with stack.sessions.begin() as s:
        await notifications.claim(s, other, attempt=1, lease=timedelta(0))
    async with stack.sessions.begin() as s:
        assert (await notifications.claim(s, other, attempt=2, lease=lease)).status == "SEND"
        await notifications.record(s, stack.tenant, "k2", status="RETRYING", attempt=2)
    async with stack.sessions.begin() as s:
        assert (await notifications.claim(s, other, attempt=3, lease=lease)).status == "SEND"
    # while it is being sent, an operator cannot resend it
    r = await stack.http.post(
        f"/v1/notifications/{other['id']}/resend", headers=stack.auth("operator")
    )
    assert r.status_code == 409 and r.json()["code"] == "notification_in_flight"


class MemoTemplate(BaseModel):
    text: str
    token: str


async def test_a_plugin_channel_gets_the_secret_and_its_failures_stay_out_of_the_run(
    stack: Stack, other_tenant: dict[str, str]
) -> None:
    received: list[tuple[Any, MemoTemplate, str]] = []
    channels = channels_for(stack.worker_registry)

    @channels.channel(f"memo{uuid.uuid4().hex[:8]}", template_model=MemoTemplate, required={"text"})
    async def memo(message: ChannelMessage, ctx: ActionContext) -> str | None:
        template = message.template
        assert isinstance(template, MemoTemplate)
        if message.to == "refuse":
            raise ActionError("MemoRefused", f"refused with {template.token}", retryable=False)
        received.append((message.to, template, message.key))
        return f"memo-{len(received)}"

    name = next(n for n in channels.names() if n.startswith("memo"))
    r = await stack.http.put(
        "/v1/secrets/memo-token", headers=stack.auth(), json={"value": "s3cr3t-value"}
    )
    assert r.status_code in (200, 201), r.text
    template = {"text": {"$expr": "'hello ' & payload.who"}, "token": {"$secret": "memo-token"}}
    definition = {
        "steps": [
            {
                "id": "hi",
                "type": "state.set",
                "values": {"x": 1},
                "notify": [
                    {"on": "started", "channel": name, "to": "desk", "template": template},
                    {"on": "completed", "channel": name, "to": "refuse", "template": template},
                ],
            }
        ]
    }
    await stack.publish("memo", definition)
    bad = {
        **definition,
        "steps": [
            {
                **definition["steps"][0],
                "notify": [{"on": "started", "channel": name, "to": "x", "template": {}}],
            }
        ],
    }
    r = await stack.http.post(
        "/v1/definitions/memo/validate", headers=stack.auth(), json={"definition": bad}
    )
    assert r.status_code == 422
    assert ("/steps/0/notify/0/template", "notify.template_incomplete") in {
        (e["path"], e["code"]) for e in r.json()["errors"]
    }

    run = await stack.start("memo", {"who": "Ada"})
    await stack.result(run)
    ((to, got, key),) = received
    assert (to, got.text, got.token) == ("desk", "hello Ada", "s3cr3t-value")
    assert len(key) == 40  # the notification's idempotency key, for the provider
    entries = {e["event"]: e for e in await log(stack, run["id"])}
    assert entries["started"]["providerMessageId"] == "memo-1"
    failed = entries["completed"]
    assert (failed["status"], failed["error"]["type"]) == ("FAILED", "MemoRefused")
    # the secret's value is masked in the recorded error and absent from history
    assert (
        "s3cr3t-value" not in json.dumps(failed)
        and "[secret:memo-token]" in failed["error"]["message"]
    )
    history = await stack.client.get_workflow_handle(run["workflowId"]).fetch_history()
    assert "s3cr3t-value" not in history.to_json()

    # another tenant sees neither the log nor the notification
    r = await stack.http.get(f"/v1/runs/{run['id']}/notifications", headers=other_tenant)
    assert r.status_code == 404
    r = await stack.http.post(f"/v1/notifications/{failed['id']}/resend", headers=other_tenant)
    assert r.status_code == 404

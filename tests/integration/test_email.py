"""``email.send`` against a real SMTP server on loopback (aiosmtpd), through the stack."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.client import WorkflowFailureError

from tests.integration.conftest import Stack

FAST_RETRY = {"maxAttempts": 3, "initialInterval": "PT0.1S", "backoffCoefficient": 1.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    """An SMTP handler keeping what it received; ``replies`` answers the next DATA
    commands (e.g. ``"451 …"``) before it accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[Envelope, EmailMessage]] = []
        self.refused: list[EmailMessage] = []
        self.replies: list[str] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        parsed = email.message_from_bytes(
            envelope.original_content or b"", policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        if self.replies:
            self.refused.append(parsed)
            return self.replies.pop(0)
        self.received.append((envelope, parsed))
        return "250 Message accepted"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
async def loopback_allowed(stack: Stack, request: pytest.FixtureRequest) -> None:
    """SMTP servers a step names pass the egress policy: the tests' sink is on loopback,
    which the tenant must allow-list (as for HTTP)."""
    if "refused_by_default" not in request.node.name:
        allow = {"allow": ["127.0.0.1"]}
        r = await stack.http.put("/v1/egress-rules", headers=stack.auth(), json=allow)
        assert r.status_code == 200, r.text


def smtp(port: int) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "tls": "none", "timeoutSeconds": 5}


def send_step(port: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": "mail",
        "type": "action.call",
        "action": "email.send",
        "input": {"smtp": smtp(port), **fields},
        "output": "sent",
        "retry": FAST_RETRY,
    }


async def test_sends_text_and_html_with_cc_bcc_and_headers(
    stack: Stack, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    await stack.publish(
        "mail",
        {
            "steps": [
                send_step(
                    port,
                    **{
                        "from": "Shop <shop@example.com>",
                        "to": [{"$expr": "payload.customer"}],
                        "cc": ["sales@example.com"],
                        "bcc": ["audit@example.com"],
                        "replyTo": "help@example.com",
                        "subject": {"$expr": "'Order ' & payload.order & ' confirmed'"},
                        "text": "Thank you for your order.",
                        "html": "<p>Thank you for your <b>order</b>.</p>",
                        "headers": {"X-Order": {"$expr": "payload.order"}},
                    },
                )
            ]
        },
    )
    run = await stack.start("mail", {"customer": "Ada <ada@example.com>", "order": "o-7"})
    result = await stack.result(run)
    sent = result["output"]["sent"]
    assert sent["accepted"] == ["ada@example.com", "sales@example.com", "audit@example.com"]
    assert sent["messageId"].endswith("@example.com>")

    [(envelope, msg)] = sink.received
    assert envelope.mail_from == "shop@example.com"
    assert envelope.rcpt_tos == ["ada@example.com", "sales@example.com", "audit@example.com"]
    assert msg["Subject"] == "Order o-7 confirmed"
    assert msg["From"] == "Shop <shop@example.com>"
    assert msg["To"] == "Ada <ada@example.com>" and msg["Cc"] == "sales@example.com"
    assert msg["Reply-To"] == "help@example.com" and msg["X-Order"] == "o-7"
    assert msg["Message-ID"] == sent["messageId"]
    # Bcc recipients get the message without appearing in it.
    assert msg["Bcc"] is None and b"audit@" not in (envelope.original_content or b"")
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().strip() == "Thank you for your order."
    assert "<b>order</b>" in html.get_content()


async def test_message_id_is_stable_across_a_retry(
    stack: Stack, smtp_sink: tuple[Sink, int]
) -> None:
    """A 4xx reply is retried; the retry carries the first attempt's Message-ID."""
    sink, port = smtp_sink
    sink.replies = ["451 4.3.0 try again later"]
    await stack.publish(
        "retry-mail",
        {
            "steps": [
                send_step(
                    port,
                    **{
                        "from": "a@example.com",
                        "to": ["b@example.com"],
                        "subject": "hi",
                        "text": "x",
                    },
                )
            ]
        },
    )
    run = await stack.start("retry-mail")
    sent = (await stack.result(run))["output"]["sent"]
    [refused] = sink.refused
    [(_, delivered)] = sink.received
    assert refused["Message-ID"] == delivered["Message-ID"] == sent["messageId"]
    invocations = (
        await stack.http.get(f"/v1/runs/{run['id']}/invocations", headers=stack.auth())
    ).json()["items"]
    [inv] = invocations
    attempts = inv["attemptLog"]
    assert [a["status"] for a in attempts] == ["FAILED", "SUCCEEDED"]
    assert attempts[0]["error"]["type"] == "SmtpTransientError"
    assert attempts[0]["error"]["details"] == [{"code": 451, "message": "4.3.0 try again later"}]
    # Another step (another idempotency key) gets another Message-ID.
    run2 = await stack.start("retry-mail")
    assert (await stack.result(run2))["output"]["sent"]["messageId"] != sent["messageId"]


async def test_5xx_fails_at_once_with_the_smtp_code(
    stack: Stack, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    sink.replies = ["554 5.6.0 message refused"]
    await stack.publish(
        "refused-mail",
        {
            "steps": [
                {
                    "id": "guard",
                    "type": "control.tryCatch",
                    "catchOn": ["SmtpRejected"],
                    "try": [
                        send_step(
                            port,
                            **{
                                "from": "a@example.com",
                                "to": ["b@example.com"],
                                "subject": "hi",
                                "text": "x",
                            },
                        )
                    ],
                    "catch": [
                        {
                            "id": "why",
                            "type": "state.set",
                            "values": {"failed": {"$expr": "error"}},
                        },
                    ],
                }
            ]
        },
    )
    run = await stack.start("refused-mail")
    failed = (await stack.result(run))["output"]["failed"]
    assert failed["type"] == "SmtpRejected" and failed["attempt"] == 1  # not retried
    assert failed["details"] == [{"code": 554, "message": "5.6.0 message refused"}]
    assert len(sink.refused) == 1 and sink.received == []

    # Every recipient refused with 5xx: the same, naming them.
    await stack.publish(
        "nobody-mail",
        {
            "steps": [
                send_step(
                    port,
                    **{
                        "from": "a@example.com",
                        "to": ["nobody@example.com"],
                        "subject": "hi",
                        "text": "x",
                    },
                )
            ]
        },
    )
    run = await stack.start("nobody-mail")
    view = await _final_view(stack, run)
    assert view["status"] == "FAILED" and view["error"]["type"] == "SmtpRejected"
    assert view["error"]["attempt"] == 1
    # Some refused, others accepted: delivered, the refused listed.
    await stack.publish(
        "partial-mail",
        {
            "steps": [
                send_step(
                    port,
                    **{
                        "from": "a@example.com",
                        "to": ["nobody@example.com", "c@example.com"],
                        "subject": "hi",
                        "text": "x",
                    },
                )
            ]
        },
    )
    run = await stack.start("partial-mail")
    sent = (await stack.result(run))["output"]["sent"]
    assert sent["accepted"] == ["c@example.com"]
    assert sent["rejected"]["nobody@example.com"].startswith("550")


async def test_starttls_required_but_not_offered_fails_without_retry(
    stack: Stack, smtp_sink: tuple[Sink, int]
) -> None:
    """``tls: starttls`` never falls back to clear text."""
    sink, port = smtp_sink
    step = send_step(
        port, **{"from": "a@example.com", "to": ["b@example.com"], "subject": "hi", "text": "x"}
    )
    step["input"]["smtp"]["tls"] = "starttls"
    await stack.publish("tls-mail", {"steps": [step]})
    view = await _final_view(stack, await stack.start("tls-mail"))
    assert view["status"] == "FAILED"
    assert view["error"]["type"] == "SmtpRejected" and view["error"]["attempt"] == 1
    assert "STARTTLS" in view["error"]["message"]
    assert sink.received == []


async def test_server_down_is_retried_then_a_catchable_failure(stack: Stack) -> None:
    port = free_port()  # nothing listens there
    await stack.publish(
        "down-mail",
        {
            "steps": [
                {
                    "id": "guard",
                    "type": "control.tryCatch",
                    "catchOn": ["SmtpUnavailable"],
                    "try": [
                        send_step(
                            port,
                            **{
                                "from": "a@example.com",
                                "to": ["b@example.com"],
                                "subject": "hi",
                                "text": "x",
                            },
                        )
                    ],
                    "catch": [
                        {
                            "id": "why",
                            "type": "state.set",
                            "values": {"failed": {"$expr": "error"}},
                        },
                    ],
                }
            ]
        },
    )
    run = await stack.start("down-mail")
    failed = (await stack.result(run))["output"]["failed"]
    assert failed["type"] == "SmtpUnavailable"
    assert failed["attempt"] == FAST_RETRY["maxAttempts"]  # retried by the step's policy
    assert f"127.0.0.1:{port}" in failed["message"]


async def test_bad_input_and_missing_configuration(stack: Stack) -> None:
    # Publish checks nothing the action cannot know yet; the run fails with the paths.
    await stack.publish(
        "bad-mail",
        {
            "steps": [
                {
                    "id": "mail",
                    "type": "action.call",
                    "action": "email.send",
                    "input": {
                        "from": "a@example.com",
                        "to": ["not-an-address"],
                        "subject": "hi\r\nBcc: x@example.com",
                        "headers": {"Message-ID": "<forged@x>"},
                    },
                }
            ]
        },
    )
    view = await _final_view(stack, await stack.start("bad-mail"))
    assert view["error"]["type"] == "ActionInputError"
    [errors] = view["error"]["details"]
    locs = {tuple(d["loc"]) for d in errors}
    assert ("to", 0) in locs and ("subject",) in locs
    # No server in the input and none configured on the worker.
    await stack.publish(
        "unconfigured-mail",
        {
            "steps": [
                {
                    "id": "mail",
                    "type": "action.call",
                    "action": "email.send",
                    "input": {
                        "from": "a@example.com",
                        "to": ["b@example.com"],
                        "subject": "hi",
                        "text": "x",
                    },
                }
            ]
        },
    )
    view = await _final_view(stack, await stack.start("unconfigured-mail"))
    assert view["error"]["type"] == "SmtpNotConfigured" and view["error"]["attempt"] == 1


async def _final_view(stack: Stack, run: dict[str, Any]) -> dict[str, Any]:
    handle = stack.client.get_workflow_handle(run["workflowId"])
    try:
        await handle.result()
    except Exception:
        pass
    from tests.integration.conftest import until

    async def ended() -> dict[str, Any] | None:
        view = await stack.run_view(run["id"])
        return view if view["status"] in ("FAILED", "SUCCEEDED") else None

    result: dict[str, Any] = await until(ended)
    return result


async def test_a_named_smtp_server_is_refused_by_default_by_the_egress_policy(
    stack: Stack, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    mail = {"from": "a@example.com", "to": ["b@example.com"], "subject": "hi", "text": "x"}
    await stack.publish("named-smtp", {"steps": [send_step(port, **mail)]})
    run = await stack.start("named-smtp")
    with pytest.raises(WorkflowFailureError):
        await stack.result(run)
    view = await stack.run_view(run["id"])
    assert view["error"]["type"] == "EgressDenied", view["error"]
    assert view["error"]["details"][0]["rule"] == "loopback"
    assert sink.received == []  # never connected

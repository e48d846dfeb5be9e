"""``email.send``'s input checks, Message-ID and SMTP error mapping (no network)."""

from __future__ import annotations

import aiosmtplib
import pytest
from pydantic import ValidationError

from activities.email import EmailInput, _failure, build_message, message_id
from tempoflow.error_types import ErrorType

BASE = {"from": "a@example.com", "to": ["b@example.com"], "subject": "hi", "text": "x"}


def test_message_id_derives_from_the_idempotency_key() -> None:
    one = message_id("t/run-1/steps/0", "Shop <shop@example.com>")
    assert one == message_id("t/run-1/steps/0", "shop@example.com")
    assert one.startswith("<") and one.endswith("@example.com>")
    assert len(one) == 1 + 32 + len("@example.com>")
    assert one != message_id("t/run-2/steps/0", "shop@example.com")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"text": None}, "'text' or an 'html'"),
        ({"to": []}, "at least one recipient"),
        ({"headers": {"Message-ID": "<x@y>"}}, "set by the action"),
        ({"headers": {"Bad Name": "x"}}, "not a valid field name"),
        ({"headers": {"X-A": "1\r\nBcc: c@example.com"}}, "line breaks"),
        ({"to": ["a@example.com, c@example.com"]}, "one address"),
        ({"replyTo": "nobody"}, "not an email address"),
        (
            {"to": [f"u{i}@example.com" for i in range(60)], "cc": ["c@example.com"] * 41},
            "at most 100",
        ),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_input_refusals(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EmailInput.model_validate({**BASE, **change})


def test_html_only_and_bcc_stays_out_of_the_headers() -> None:
    data = EmailInput.model_validate(
        {**BASE, "text": None, "html": "<p>x</p>", "bcc": ["hidden@example.com"]}
    )
    msg = build_message(data, "a@example.com", "<id@example.com>")
    assert msg.get_content_type() == "text/html"
    assert "hidden@" not in msg.as_string()


@pytest.mark.parametrize(
    ("err", "type_", "retryable"),
    [
        (aiosmtplib.SMTPConnectError("refused"), ErrorType.SMTP_UNAVAILABLE, True),
        (ConnectionRefusedError(111, "refused"), ErrorType.SMTP_UNAVAILABLE, True),
        (aiosmtplib.SMTPReadTimeoutError("slow"), ErrorType.SMTP_UNAVAILABLE, True),
        (aiosmtplib.SMTPServerDisconnected("gone"), ErrorType.SMTP_UNAVAILABLE, True),
        (aiosmtplib.SMTPConnectResponseError(421, "busy"), ErrorType.SMTP_TRANSIENT_ERROR, True),
        (aiosmtplib.SMTPConnectResponseError(554, "no"), ErrorType.SMTP_REJECTED, False),
        (aiosmtplib.SMTPAuthenticationError(535, "bad creds"), ErrorType.SMTP_REJECTED, False),
        (aiosmtplib.SMTPDataError(452, "full"), ErrorType.SMTP_TRANSIENT_ERROR, True),
        (aiosmtplib.SMTPNotSupported("no AUTH"), ErrorType.SMTP_REJECTED, False),
        (aiosmtplib.SMTPException("STARTTLS not supported"), ErrorType.SMTP_REJECTED, False),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(450, "later", "b@example.com")]
            ),
            ErrorType.SMTP_TRANSIENT_ERROR,
            True,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [
                    aiosmtplib.SMTPRecipientRefused(450, "later", "b@example.com"),
                    aiosmtplib.SMTPRecipientRefused(550, "unknown", "c@example.com"),
                ]
            ),
            ErrorType.SMTP_REJECTED,
            False,
        ),
    ],
)
def test_smtp_failures_map_to_types(err: Exception, type_: str, retryable: bool) -> None:
    failure = _failure(err, "127.0.0.1:25")
    assert (failure.type, failure.retryable) == (type_, retryable)
    if isinstance(err, aiosmtplib.SMTPResponseException):
        assert failure.details == {"code": err.code, "message": err.message}

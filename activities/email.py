"""``email.send``: one message over SMTP (aiosmtplib).

The SMTP server comes from the step's ``smtp`` input (its ``password`` usually a
``{"$secret": "name"}`` reference, resolved before the handler runs) or from the worker's
settings (``TEMPOFLOW_SMTP__HOST``, …). The Message-ID is derived from the step's
idempotency key, so every attempt of a step sends the same Message-ID and a receiver (or
a person) can recognise a repeated delivery after a retry.

Unreachable servers, timeouts and 4xx replies are retried under the step's ``retry``
policy; 5xx replies fail the step at once with the SMTP code (docs/actions.md lists the
error types).
"""

from __future__ import annotations

import hashlib
import re
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, parseaddr
from functools import cached_property
from typing import Annotated, Any, Literal

import aiosmtplib
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from activities.egress import AllowLists, pinned_socket
from activities.registry import ActionContext, ActionError, ActionRegistry
from tempoflow.error_types import ErrorType
from tempoflow.settings import Settings, SmtpSettings

ACTION = "email.send"
MAX_RECIPIENTS = 100
MAX_BODY_CHARS = 1_000_000
MAX_HEADERS = 50
# Headers the action writes itself; a step's ``headers`` may not set them.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "message-id",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "sender",
        "return-path",
    }
)
HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,75}$")


def _address(value: str) -> str:
    """One mailbox (``ada@example.com`` or ``Ada <ada@example.com>``)."""
    if "\r" in value or "\n" in value:
        raise ValueError("an address may not contain line breaks")
    parsed = getaddresses([value])
    if len(parsed) != 1:
        raise ValueError("one address expected")
    _, addr = parsed[0]
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or " " in addr:
        raise ValueError(f"not an email address: {value!r}")
    return value


Address = Annotated[str, Field(max_length=320), AfterValidator(_address)]


def _single_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("may not contain line breaks")
    return value


class SmtpServer(BaseModel):
    """An SMTP server named by the step (instead of the worker's settings)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = Field(default=None, max_length=512)
    password: str | None = Field(default=None, max_length=4096)
    """Pass a secret reference: ``{"$secret": "smtp-password"}``."""
    timeoutSeconds: float = Field(default=30.0, gt=0, le=600)


class EmailInput(BaseModel):
    """A message with a text body, an HTML body or both (then multipart/alternative)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: Address | None = Field(default=None, alias="from")
    """The ``From`` address; the worker's ``TEMPOFLOW_SMTP__FROM_ADDRESS`` when absent."""
    to: list[Address] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    cc: list[Address] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    bcc: list[Address] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    """Receive the message without appearing in its headers."""
    replyTo: Address | None = None
    subject: Annotated[str, Field(max_length=998), AfterValidator(_single_line)]
    text: str | None = Field(default=None, max_length=MAX_BODY_CHARS)
    html: str | None = Field(default=None, max_length=MAX_BODY_CHARS)
    headers: dict[str, Annotated[str, Field(max_length=998), AfterValidator(_single_line)]] = Field(
        default_factory=dict, max_length=MAX_HEADERS
    )
    """Further headers (``X-…``, ``List-Unsubscribe``…); the ones the action writes
    itself (From, To, Subject, Message-ID…) are refused."""
    smtp: SmtpServer | None = None

    @model_validator(mode="after")
    def _check(self) -> EmailInput:
        if self.text is None and self.html is None:
            raise ValueError("give a 'text' or an 'html' body (or both)")
        if not (self.to or self.cc or self.bcc):
            raise ValueError("give at least one recipient in 'to', 'cc' or 'bcc'")
        if len(self.to) + len(self.cc) + len(self.bcc) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in all")
        for name in self.headers:
            if not HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid field name")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the action itself")
        return self


class EmailOutput(BaseModel):
    messageId: str
    """The Message-ID, the same for every attempt of the step."""
    accepted: list[str]
    """Envelope recipients the server accepted."""
    rejected: dict[str, str] = Field(default_factory=dict)
    """Recipients the server refused while accepting others (address → reply)."""
    response: str = ""
    """The server's reply to the message."""


def message_id(idempotency_key: str, sender: str) -> str:
    """``<sha256(key)[:32]@sender's domain>``: stable across the attempts of a step."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "tempoflow"
    return f"<{digest}@{domain}>"


def build_message(data: EmailInput, sender: str, msg_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    if data.to:
        message["To"] = ", ".join(data.to)
    if data.cc:
        message["Cc"] = ", ".join(data.cc)
    if data.replyTo:
        message["Reply-To"] = data.replyTo
    message["Subject"] = data.subject
    message["Message-ID"] = msg_id
    message["Date"] = formatdate(localtime=False, usegmt=True)
    for name, value in data.headers.items():
        message[name] = value
    if data.text is not None:
        message.set_content(data.text)
        if data.html is not None:
            message.add_alternative(data.html, subtype="html")
    else:
        message.set_content(data.html or "", subtype="html")
    return message


def _reply(err: aiosmtplib.SMTPResponseException) -> dict[str, Any]:
    return {"code": err.code, "message": err.message}


def _failure(err: Exception, host: str) -> ActionError:
    """The step's error for an SMTP failure: 4xx and connection trouble retry, 5xx not."""
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        replies = {r.recipient: _reply(r) for r in err.recipients}
        transient = all(400 <= r.code < 500 for r in err.recipients)
        return ActionError(
            ErrorType.SMTP_TRANSIENT_ERROR if transient else ErrorType.SMTP_REJECTED,
            f"{host} refused every recipient",
            retryable=transient,
            details={"recipients": replies},
        )
    if isinstance(err, aiosmtplib.SMTPResponseException):  # a reply, greeting included
        if 400 <= err.code < 500:
            return ActionError(
                ErrorType.SMTP_TRANSIENT_ERROR,
                f"{host} answered {err.code}: {err.message}",
                details=_reply(err),
            )
        return ActionError(
            ErrorType.SMTP_REJECTED,
            f"{host} answered {err.code}: {err.message}",
            retryable=False,
            details=_reply(err),
        )
    if isinstance(err, aiosmtplib.SMTPException) and not isinstance(err, OSError):
        # The session cannot work as configured (STARTTLS not offered, an extension
        # missing): retrying would fail the same way.
        return ActionError(
            ErrorType.SMTP_REJECTED,
            f"{host}: {err}",
            retryable=False,
            details={"code": None, "message": str(err)},
        )
    # Refused, unreachable, timed out, disconnected (SMTPConnectError, SMTPTimeoutError,
    # SMTPServerDisconnected, OSError): worth another attempt.
    return ActionError(
        ErrorType.SMTP_UNAVAILABLE,
        f"SMTP server {host} unavailable: {err}",
        details={"error": type(err).__name__},
    )


class EmailSender:
    """The handler, with the worker's SMTP settings (read from the environment at the
    first send unless given)."""

    def __init__(
        self, smtp: SmtpSettings | None = None, allow_lists: AllowLists | None = None
    ) -> None:
        self._given = smtp
        self._allow_lists = allow_lists or AllowLists(None, 0)

    @cached_property
    def defaults(self) -> SmtpSettings:
        return self._given or Settings().smtp

    def _server(self, data: EmailInput) -> SmtpServer:
        if data.smtp is not None:
            return data.smtp
        d = self.defaults
        if not d.host:
            raise ActionError(
                ErrorType.SMTP_NOT_CONFIGURED,
                "no SMTP server: give the step an 'smtp' object or set TEMPOFLOW_SMTP__HOST "
                "on the worker",
                retryable=False,
            )
        return SmtpServer(
            host=d.host,
            port=d.port,
            tls=d.tls,
            username=d.username,
            password=d.password.get_secret_value() if d.password else None,
            timeoutSeconds=d.timeout_seconds,
        )

    async def send(self, data: EmailInput, ctx: ActionContext) -> EmailOutput:
        server = self._server(data)
        sender = data.sender or self.defaults.from_address
        if not sender:
            raise ActionError(
                ErrorType.SMTP_NOT_CONFIGURED,
                "no sender: give 'from' or set TEMPOFLOW_SMTP__FROM_ADDRESS on the worker",
                retryable=False,
            )
        msg_id = message_id(ctx.idempotency_key, sender)
        message = build_message(data, sender, msg_id)
        recipients = [parseaddr(a)[1] for a in (*data.to, *data.cc, *data.bcc)]
        sock = None
        try:
            if data.smtp is not None:
                # A server the definition names goes through the egress policy like an
                # HTTP request (the worker's own TEMPOFLOW_SMTP__HOST is the operator's).
                allow = await self._allow_lists.get(ctx.tenant)
                sock = await pinned_socket(server.host, server.port, allow, server.timeoutSeconds)
            refused, response = await aiosmtplib.send(
                message,
                sender=parseaddr(sender)[1],
                recipients=recipients,
                hostname=server.host,
                port=None if sock is not None else server.port,
                username=server.username,
                password=server.password,
                use_tls=server.tls == "tls",
                start_tls=server.tls == "starttls",
                timeout=server.timeoutSeconds,
                sock=sock,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
            raise _failure(err, f"{server.host}:{server.port}") from None
        finally:
            if sock is not None:
                sock.close()
        ctx.logger.info(
            "email %s sent to %d recipient(s) via %s:%s",
            msg_id,
            len(recipients) - len(refused),
            server.host,
            server.port,
        )
        return EmailOutput(
            messageId=msg_id,
            accepted=[r for r in recipients if r not in refused],
            rejected={r: f"{reply.code} {reply.message}" for r, reply in refused.items()},
            response=response,
        )


def register_email(
    registry: ActionRegistry,
    smtp: SmtpSettings | None = None,
    allow_lists: AllowLists | None = None,
) -> EmailSender:
    """Register ``email.send``; ``smtp`` defaults to the worker's ``TEMPOFLOW_SMTP__*``;
    SMTP servers a step names are checked against the tenant's egress ``allow_lists``."""
    sender = EmailSender(smtp, allow_lists)
    registry.action(
        ACTION,
        input_model=EmailInput,
        output_model=EmailOutput,
        description=(
            "Sends an email over SMTP (text and/or HTML; to, cc, bcc). The Message-ID "
            "derives from the step's idempotency key, so retries are recognisable."
        ),
    )(sender.send)
    return sender

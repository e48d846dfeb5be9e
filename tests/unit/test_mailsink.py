"""The dev stack's SMTP sink keeps each message as a file headed by its envelope."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from launcher.mailsink import start_mail_sink


async def test_each_message_lands_as_an_eml_file_with_its_envelope(tmp_path: Path) -> None:
    server, port = await start_mail_sink(tmp_path / "mail")  # a free loopback port
    try:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "hello"
        msg.set_content("body")
        await aiosmtplib.send(
            msg,
            recipients=["b@example.com", "hidden@example.com"],
            hostname="127.0.0.1",
            port=port,
            start_tls=False,
            timeout=10,
        )
    finally:
        server.close()
        await server.wait_closed()
    [eml] = (tmp_path / "mail").iterdir()
    assert eml.suffix == ".eml"
    parsed = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "hello" and parsed["X-Envelope-From"] == "a@example.com"
    assert parsed["X-Envelope-To"] == "b@example.com, hidden@example.com"
    assert parsed["Bcc"] is None

"""The dev stack's SMTP sink: accepts every message on loopback and writes it to a file.

``tempoflow dev`` points the worker's ``email.send`` at it (unless ``TEMPOFLOW_SMTP__HOST``
is set), so a definition that sends mail can be tried without a mail server: each message
lands as ``<home>/mail/<time>-<id>.eml``, headed by its envelope (``X-Envelope-From``,
``X-Envelope-To``, which also shows Bcc recipients).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class MailSink:
    """An aiosmtpd handler writing each message to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        head = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.eml"
        await asyncio.to_thread(self._write, name, head + (envelope.original_content or b""))
        return "250 Message accepted (written by the Tempoflow dev sink)"

    def _write(self, name: str, content: bytes) -> None:
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, self.directory / name)  # readers never see half a message


async def start_mail_sink(
    directory: Path, host: str = "127.0.0.1", port: int = 0
) -> tuple[asyncio.Server, int]:
    """Serve SMTP on ``host:port`` (a free port when 0); returns the server and its port."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    handler: Any = MailSink(directory)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="tempoflow-dev-sink", data_size_limit=10_485_760),
        host,
        port,
    )
    bound = int(server.sockets[0].getsockname()[1])
    return server, bound

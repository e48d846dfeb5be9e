"""Run logs: the lines an action logs (``core.log``, ``ActionContext.logger``) during an
attempt, kept for the run-log projection.

A handler on the action logger's base logger (``temporalio.activity``) copies each
record made while an attempt runs into that attempt's :class:`AttemptLog` (a context
variable marks the attempt), and the attempt writes them with its outcome record: no
extra transaction, and nothing travels through the workflow. The handler sits behind the
logger's filters and record factory, so whatever they do to a record (masking secret
values) is already done when it is copied. If the outcome cannot be written (database
unreachable), the lines are only in the worker's own log.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from tempoflow.records import LogLineRecord
from temporal_workflows.models import ActionInvocation

ACTION_LOGGER = "temporalio.activity"
"""The base logger of ``ActionContext.logger`` (``temporalio.activity.logger``)."""
MAX_LINES = 1000
"""Lines kept per attempt; further lines are counted in one last line."""
MAX_MESSAGE = 10_000
"""Characters kept of one message (with its exception text)."""

_current: ContextVar[AttemptLog | None] = ContextVar("tempoflow_attempt_log", default=None)


class AttemptLog:
    """The lines one attempt of an action logged."""

    def __init__(self, inv: ActionInvocation, attempt: int) -> None:
        self._inv = inv
        self._attempt = attempt
        self._lines: list[LogLineRecord] = []
        self._dropped = 0

    def add(self, record: logging.LogRecord) -> None:
        if len(self._lines) >= MAX_LINES:
            self._dropped += 1
            return
        self._lines.append(self._line(record.levelno, _message(record), _fields(record)))

    def _line(self, level: int, message: str, fields: dict[str, Any] | None) -> LogLineRecord:
        inv = self._inv
        return LogLineRecord(
            tenant=inv.tenant,
            run_id=inv.run_id,
            seq=inv.seq,
            step_path=inv.step_path,
            loop=inv.loop,
            attempt=self._attempt,
            n=len(self._lines) + 1,
            level=level,
            message=message[:MAX_MESSAGE],
            fields=fields,
            logged_at=datetime.now(UTC),
        )

    def records(self) -> list[LogLineRecord]:
        """The lines so far (plus one counting those left out)."""
        if not self._dropped:
            return list(self._lines)
        note = self._line(
            logging.WARNING, f"{self._dropped} more line(s) left out (limit {MAX_LINES})", None
        )
        return [*self._lines, note]


def _message(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:  # a malformed format string: keep what can be shown
        message = f"{record.msg!r} % {record.args!r}"
    # temporalio's adapter appends the activity's details to the message; the run-log
    # line carries them as columns.
    details = record.__dict__.get("temporal_activity")
    if details is not None:
        suffix = f" ({details})"
        if message.endswith(suffix):
            message = message[: -len(suffix)]
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        message = f"{message}\n{record.exc_text}"
    return message


def _fields(record: logging.LogRecord) -> dict[str, Any] | None:
    """``extra={"fields": {...}}`` of the record (``core.log``'s fields)."""
    fields = record.__dict__.get("fields")
    return dict(fields) if isinstance(fields, dict) and fields else None


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        current = _current.get()
        if current is not None:
            current.add(record)


_handler: _Capture | None = None


def install(level: int = logging.INFO) -> None:
    """Copy the action logger's records at ``level`` and above into the running attempt's
    log (idempotent; a later call changes the level). The logger is enabled down to
    ``level`` if it was not."""
    global _handler
    logger = logging.getLogger(ACTION_LOGGER)
    if _handler is None:
        _handler = _Capture()
        logger.addHandler(_handler)
    _handler.setLevel(level)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)


def collect(inv: ActionInvocation, attempt: int) -> AttemptLog:
    """Start collecting the lines of this attempt (for the rest of the activity's task)."""
    if _handler is None:
        install()
    lines = AttemptLog(inv, attempt)
    _current.set(lines)
    return lines

"""Secret references in action inputs: resolved just before the handler, masked after.

Only ``{"$secret": "name"}`` references travel through the workflow. For one attempt,
:meth:`SecretResolver.run` loads every secret the input names (one query, the run's
tenant), hands the handler the input with the values in place, and masks each value
(``[secret:name]``) in what the attempt produces before it reaches Temporal, PostgreSQL or
a log line: the output, the error (message and details, with no chained cause), heartbeat
details and the log records made while the handler runs (their message, arguments and
exception text; and the ``extra`` fields of records on the action's logger).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from projections import secrets as store
from projections.db import is_transient
from tempoflow.error_types import ErrorType
from tempoflow.keyring import Keyring, KeyringError
from tempoflow.redaction import Redaction
from tempoflow.secrets import Masker, is_name, iter_references, substitute
from temporal_workflows.models import ActionInvocation

T = TypeVar("T")
ACTION_LOGGER = "temporalio.activity"
"""The logger behind ``ActionContext.logger`` (``activity.logger``)."""

LOOKUP_RETRIES = (0.1, 0.3, 0.9)
"""Pauses (seconds) between tries of the secret lookup on a transient database error."""

_active: ContextVar[Masker | None] = ContextVar("tempoflow_secret_masker", default=None)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def projected_input(inv: ActionInvocation) -> Any:
    """The step input the activity projects: references as they are, ``/input``
    redaction pointers applied."""
    return Redaction(inv.redact).step_input(inv.input) if inv.redact else inv.input


def masked_heartbeat(*details: Any) -> None:
    """``activity.heartbeat`` with the attempt's secret values masked."""
    masker = _active.get()
    activity.heartbeat(*(masker.value(list(details)) if masker else details))


def _mask_record(record: logging.LogRecord, masker: Masker) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed format: keep what can be shown
        message = f"{record.msg!r} % {record.args!r}"
    record.msg, record.args = masker.text(message), None
    if record.exc_info:
        # Format the traceback now, masked; formatters use ``exc_text`` as it is.
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_info, record.exc_text = None, masker.text(text)
    elif record.exc_text:
        record.exc_text = masker.text(record.exc_text)
    if record.stack_info:
        record.stack_info = masker.text(record.stack_info)


class _ExtraFilter(logging.Filter):
    """Masks the ``extra`` fields of the action logger's records (they are set after the
    record factory ran)."""

    def filter(self, record: logging.LogRecord) -> bool:
        masker = _active.get()
        if masker:
            for key, value in list(record.__dict__.items()):
                if key not in _STANDARD:
                    setattr(record, key, masker.value(value))
            _mask_record(record, masker)
        return True


_installed = False


def install_log_masking() -> None:
    """Mask the active attempt's secret values in every log record created while its
    handler runs (any logger: a record factory keyed on the attempt's context), and in
    the action logger's ``extra`` fields. Idempotent."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        masker = _active.get()
        if masker:
            _mask_record(record, masker)
        return record

    logging.setLogRecordFactory(factory)
    logging.getLogger(ACTION_LOGGER).addFilter(_ExtraFilter())
    _installed = True


def _masked_error(err: Exception, masker: Masker) -> ApplicationError:
    """``err`` as an ``ApplicationError`` with the values masked and no chained cause
    (Temporal would carry the cause's message into history)."""
    if isinstance(err, ApplicationError):
        return ApplicationError(
            masker.text(err.message),
            *masker.value(list(err.details)),
            type=err.type,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
        )
    # What Temporal would make of a plain exception: its class name, retryable.
    return ApplicationError(masker.text(str(err)), type=type(err).__name__)


class SecretResolver:
    """Resolves an attempt's secret references (worker-wide: sessions and keyring)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: Keyring) -> None:
        self.sessions = sessions
        self.keyring = keyring
        install_log_masking()

    async def _load(self, tenant: str, data: Any, written: list[str]) -> dict[str, str]:
        refs = list(iter_references(data))
        injected = [path for path, _ in refs if path not in written]
        if injected:
            # A reference an expression produced (from run input, an event, an action's
            # output): resolving it would let data choose which secret an action gets.
            raise ApplicationError(
                f"the secret reference at /input{injected[0]} comes from data, not from "
                "the definition; only references written in the definition are resolved",
                {"path": f"/input{injected[0]}"},
                type=ErrorType.ACTION_INPUT_ERROR,
                non_retryable=True,
            )
        bad = [f"/input{path}" for path, name in refs if not is_name(name)]
        if bad:
            raise ApplicationError(
                f"the secret reference at {bad[0]} does not name a secret",
                {"path": bad[0]},
                type=ErrorType.SECRET_NOT_FOUND,
                non_retryable=True,
            )
        names = sorted({name for _, name in refs})
        for delay in (*LOOKUP_RETRIES, None):
            try:
                async with self.sessions() as session:
                    values = await store.reveal(session, self.keyring, tenant, names)
                break
            except KeyringError as err:
                raise ApplicationError(
                    str(err), type=ErrorType.SECRET_UNREADABLE, non_retryable=True
                ) from None
            except Exception as err:
                # The claim reached the database a moment ago: a blip, retried briefly
                # here; beyond that the attempt fails (retryable) without running.
                if delay is None or not is_transient(err):
                    raise
                activity.heartbeat()
                await asyncio.sleep(delay)
        missing = [n for n in names if n not in values]
        if missing:
            raise ApplicationError(
                f"secret {missing[0]!r} does not exist"
                + (f" (nor {', '.join(map(repr, missing[1:]))})" if missing[1:] else ""),
                {"secrets": missing},
                type=ErrorType.SECRET_NOT_FOUND,
                non_retryable=True,
            )
        return values

    async def run(
        self, tenant: str, data: Any, written: list[str], call: Callable[[Any], Awaitable[T]]
    ) -> T:
        """``call(data with the secrets in place)``; its result and any failure masked.

        Args:
            tenant: the run's tenant (whose secrets are read).
            data: the action's resolved input.
            written: pointers of the references the definition wrote (only these resolve).
            call: runs the handler on the input.
        """
        if not any(True for _ in iter_references(data)):
            return await call(data)
        values = await self._load(tenant, data, written)
        masker = Masker(values)
        token = _active.set(masker)
        failure: ApplicationError | None = None
        try:
            result = await call(substitute(data, values))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            failure = _masked_error(err, masker)
        finally:
            _active.reset(token)
        if failure is not None:
            raise failure  # raised here, outside ``except``: no implicit ``__context__``
        masked: T = masker.value(result)
        return masked

"""Group commit: the projection writes of many concurrent activities in one transaction.

Each write (a batch of projection records, optionally with an invocation claim) is
queued; a flusher takes everything queued and writes it in one transaction on a Core
connection (no ORM session): one statement per table, executed with the rows of every
write, then the claims. Each caller's ``await`` returns only after its write committed,
so an activity still completes only once its records are durable; what a caller sees
(the claim's outcome, or the error) is what a transaction of its own would have given.

No timer: a write queued while the database is idle goes at once, and writes arriving
while a transaction is in flight form the next group (at most ``flushers`` transactions
in flight). A group that fails on a data error is written again one write at a time
(degraded when a value cannot be stored), so one bad write never fails another's; a
transient error (the database unreachable, a deadlock) fails every write of the group,
and each caller retries as it would have.

Lock order: every table's rows are written ordered by key, the claims too, so two groups
in flight at once (or two workers' groups) never deadlock on each other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections import invocations
from projections.db import is_permanent, is_transient
from projections.models import ActionInvocation
from projections.storable import storable_row
from projections.writer import write_batches
from tempoflow.records import ProjectionBatch

log = logging.getLogger("tempoflow.projections")

MAX_GROUP = 256
"""Writes in one transaction at most."""
FLUSHERS = 2
"""Transactions in flight at once (the next group forms while one commits)."""
TRANSACTION_TIMEOUT = 10.0
"""Seconds a group's transaction may take before it is abandoned (and its writes fail
as if the database were unreachable)."""


@dataclass
class _Write:
    batches: list[ProjectionBatch]
    claim: invocations.ClaimRequest | None
    done: asyncio.Future[invocations.Claim | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class GroupStats:
    """Counters (for benchmarks and logs)."""

    writes: int = 0
    transactions: int = 0
    fallbacks: int = 0


class GroupWriter:
    """Queues projection writes and commits them in groups (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_group: int = MAX_GROUP,
        flushers: int = FLUSHERS,
        transaction_timeout: float = TRANSACTION_TIMEOUT,
    ) -> None:
        self.engine = engine
        self.max_group = max_group
        self.flushers = flushers
        self.transaction_timeout = transaction_timeout
        self.stats = GroupStats()
        self._queue: list[_Write] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, batches: list[ProjectionBatch]) -> None:
        """Write ``batches`` (in order); returns once they committed (raises what the
        write raised)."""
        batches = [b for b in batches if not b.is_empty()]
        if batches:
            await self._submit(_Write(batches, None))

    async def claim(
        self, batches: list[ProjectionBatch], request: invocations.ClaimRequest
    ) -> invocations.Claim:
        """Write ``batches`` and claim an invocation in the same transaction."""
        found = await self._submit(_Write(batches, request))
        assert found is not None
        return found

    async def _submit(self, write: _Write) -> invocations.Claim | None:
        self._queue.append(write)
        self.stats.writes += 1
        if self._running < self.flushers:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # A caller that stops waiting (cancelled, timed out) leaves its write queued or
        # in flight: it is written anyway (every write is idempotent), nobody is told.
        return await asyncio.shield(write.done)

    async def _drain(self) -> None:
        try:
            while self._queue:
                group = self._queue[: self.max_group]
                del self._queue[: self.max_group]
                try:
                    await self._flush(group)
                except BaseException as err:  # cancelled (shutdown): nobody waits forever
                    _settle_error(group, err)
                    raise
        finally:
            self._running -= 1

    async def _flush(self, group: list[_Write]) -> None:
        try:
            results = await self._transaction(group, degraded=False)
        except Exception as err:
            if is_transient(err) or (len(group) == 1 and not is_permanent(err)):
                _settle_error(group, err)
                return
            self.stats.fallbacks += 1
            if len(group) == 1:
                await self._alone(group[0], failed=err)
                return
            log.warning("group of %d writes failed (%r): writing one by one", len(group), err)
            for write in group:
                await self._alone(write)
            return
        for write, result in zip(group, results, strict=True):
            if not write.done.done():
                write.done.set_result(result)

    async def _alone(self, write: _Write, failed: BaseException | None = None) -> None:
        """One write in a transaction of its own (unless it ``failed`` already so); after a
        permanent data error once more, degraded (unstorable values replaced by markers)."""
        try:
            try:
                if failed is not None:
                    raise failed
                (result,) = await self._transaction([write], degraded=False)
            except Exception as err:
                if not is_permanent(err):
                    raise
                log.warning("projection write degraded after a data error: %s", err)
                (result,) = await self._transaction([write], degraded=True)
        except Exception as err:
            _settle_error([write], err)
        else:
            if not write.done.done():
                write.done.set_result(result)

    async def _transaction(
        self, group: list[_Write], *, degraded: bool
    ) -> list[invocations.Claim | None]:
        async with (
            asyncio.timeout(self.transaction_timeout),
            self.engine.begin() as conn,
        ):
            self.stats.transactions += 1
            await write_batches(conn, [b for w in group for b in w.batches], degraded=degraded)
            results: list[invocations.Claim | None] = [None] * len(group)
            claims = sorted(
                (i for i, w in enumerate(group) if w.claim is not None),
                key=lambda i: _claim_key(group[i]),
            )
            for i in claims:
                request = group[i].claim
                assert request is not None
                results[i] = await _claim(conn, request, degraded)
            return results


def _claim_key(write: _Write) -> tuple[Any, ...]:
    assert write.claim is not None
    ref = write.claim.ref
    return (ref.tenant, ref.action, ref.version, ref.key)


async def _claim(
    conn: AsyncConnection, request: invocations.ClaimRequest, degraded: bool
) -> invocations.Claim:
    if degraded:
        row = storable_row(ActionInvocation.__table__, request.ref.columns())
        ref = invocations.InvocationRef(
            row["tenant"], row["action"], row["action_version"], row["idempotency_key"]
        )
        request = dataclasses.replace(request, ref=ref)
    return await invocations.claim(conn, request)


def _settle_error(group: list[_Write], err: BaseException) -> None:
    for write in group:
        if write.done.done():
            continue
        if isinstance(err, asyncio.CancelledError):
            write.done.cancel()
            continue
        write.done.set_exception(err)
        # Retrieved or not (its caller may have stopped waiting), never "never
        # retrieved" noise.
        write.done.exception()

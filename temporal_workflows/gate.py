"""Flow control: one gate workflow per (tenant, definition) hands out run slots.

The semaphore pattern of Temporal's samples. A run of a definition with ``limits`` asks
the gate for a slot before its first step (``GATE_ACQUIRE_ACTIVITY`` signals the gate,
or signals-with-start it when it is not running), shows ``QUEUED`` until the gate
signals ``GRANT_SIGNAL`` to it (``GATE_GRANT_ACTIVITY`` sends one workflow task's grants
together), and releases its slot on every way out of the run (completed, failed,
cancelled, and also while still queued: a release of a run that holds nothing only
takes it out of the queue) with ``GATE_RELEASE_SIGNAL``, sent by the activity that
writes the run's outcome (``GATE_CLOSE_ACTIVITY``). Runs that end without running code
(terminated, timed out) are found by the gate's holder check (``GATE_CHECK_ACTIVITY``
asks Temporal which of them are closed).

The queue lives in the gate's state (its history), so nothing queued is lost when a
worker, an API process or the server restarts; every start source (API, events,
schedules, webhooks) starts the run in Temporal as before and the run queues itself,
so several API processes never start more than the limit. Slots are granted by priority,
then in request order; ``startsPerMinute`` is a sliding window of grant times.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow

from tempoflow.records import ProjectionBatch

GATE_WORKFLOW = "tempoflow.gate"
GATE_ACQUIRE_SIGNAL = "tempoflow.gate.acquire"
GATE_RELEASE_SIGNAL = "tempoflow.gate.release"
GRANT_SIGNAL = "tempoflow.gate.granted"
GATE_ACQUIRE_ACTIVITY = "tempoflow.gate_acquire"
GATE_CHECK_ACTIVITY = "tempoflow.gate_check"
GATE_CLOSE_ACTIVITY = "tempoflow.gate_close"
GATE_GRANT_ACTIVITY = "tempoflow.gate_grant"

DEFAULT_PRIORITY = 3
CHECK_INTERVAL = timedelta(seconds=10)
"""How often the gate asks Temporal whether its holders are still open (only while
some run waits for a slot: an idle gate checks nothing)."""
IDLE_CLOSE = timedelta(minutes=5)
"""An empty gate ends after this long (the next request starts it again)."""
MAX_HISTORY = 10_000
"""Continue as new past this many events (the state carried is the holders and queue),
or sooner when Temporal suggests it. Each continue-as-new stalls the gate (it waits for
its grants in flight, then a new run starts), so not too often: a grant costs about a
dozen events."""
LEGACY_MAX_HISTORY = 2_000
"""The threshold of gates started before ``GATE_PATCH`` (their histories replay as is)."""
GATE_PATCH = "tempoflow-gate-background-check"
"""Gates from this version check their holders in the background (granting goes on
meanwhile) and continue as new past ``MAX_HISTORY`` rather than ``LEGACY_MAX_HISTORY``."""
GRANT_PATCH = "tempoflow-gate-batched-grants"
"""Gates from this version send the grants of one workflow task together, from a local
activity (one marker in the gate's history), not one signal command each (two events
each, and a workflow task for their confirmations)."""
WINDOW = timedelta(minutes=1)


def gate_id(tenant: str, definition_key: str) -> str:
    """The gate's workflow id (never a run's: those are ``<tenant>/<uuid>``)."""
    return f"tempoflow-gate/{tenant}/{definition_key}"


class GateRequest(BaseModel):
    """A run asking for a slot (signal ``GATE_ACQUIRE_SIGNAL``; repeats are harmless)."""

    workflow_id: str
    max_concurrent: int | None = None
    starts_per_minute: int | None = None
    priority: int = DEFAULT_PRIORITY


class GateAcquire(BaseModel):
    """Input of ``GATE_ACQUIRE_ACTIVITY``: the request, and the run's ``QUEUED`` row."""

    gate_id: str
    task_queue: str
    request: GateRequest
    pending: ProjectionBatch | None = None
    """Written first: the run row with status QUEUED."""


class GateClose(BaseModel):
    """Input of ``GATE_CLOSE_ACTIVITY``: a limited run's closing projections, written
    first, then the release of its slot (or of its place in the queue)."""

    gate_id: str
    workflow_id: str
    batch: ProjectionBatch


class GateState(BaseModel):
    """What the gate carries across continue-as-new (and starts with: empty)."""

    holders: dict[str, datetime] = Field(default_factory=dict)
    """Workflow id of each run holding a slot, with when it was granted."""
    queue: list[GateRequest] = Field(default_factory=list)
    """Waiting runs in request order (granted by priority, then this order)."""
    starts: list[datetime] = Field(default_factory=list)
    """Grant times within the last minute (``startsPerMinute``)."""
    max_concurrent: int | None = None
    starts_per_minute: int | None = None
    """The limits of the most recent request (the version that run pinned)."""


def next_grants(state: GateState, now: datetime) -> list[GateRequest]:
    """Take from ``state.queue`` the requests that may start now (and record them as
    holders and starts). Pure: the gate's scheduling decision."""
    state.starts = [t for t in state.starts if now - t < WINDOW]
    granted: list[GateRequest] = []
    order = sorted(range(len(state.queue)), key=lambda i: (state.queue[i].priority, i))
    taken: set[int] = set()
    for index in order:
        if state.max_concurrent is not None and len(state.holders) >= state.max_concurrent:
            break
        if state.starts_per_minute is not None and len(state.starts) >= state.starts_per_minute:
            break
        request = state.queue[index]
        taken.add(index)
        state.holders[request.workflow_id] = now
        state.starts.append(now)
        granted.append(request)
    state.queue = [r for i, r in enumerate(state.queue) if i not in taken]
    return granted


def next_rate_slot(state: GateState) -> datetime | None:
    """When the rate window next lets a start through (None: it does not hold anyone)."""
    if (
        state.starts_per_minute is None
        or not state.queue
        or len(state.starts) < state.starts_per_minute
    ):
        return None
    return min(state.starts) + WINDOW


def add_request(state: GateState, request: GateRequest) -> bool:
    """Queue ``request`` unless its run holds a slot or waits already; True when it
    holds one (the grant is sent again: the first may have been lost with a reset)."""
    state.max_concurrent = request.max_concurrent
    state.starts_per_minute = request.starts_per_minute
    if request.workflow_id in state.holders:
        return True
    if all(r.workflow_id != request.workflow_id for r in state.queue):
        state.queue.append(request)
    return False


def release(state: GateState, run_workflow_id: str) -> None:
    """The run ended (or gave up waiting): free its slot, or take it out of the queue."""
    state.holders.pop(run_workflow_id, None)
    state.queue = [r for r in state.queue if r.workflow_id != run_workflow_id]


@workflow.defn(name=GATE_WORKFLOW)
class GateWorkflow:
    """A counting semaphore with a durable FIFO queue (per priority) and a rate window."""

    @workflow.init
    def __init__(self, state: GateState) -> None:
        self._state = state
        self._changed = True
        self._regrant: list[str] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = workflow.now()
        self._checking: asyncio.Task[None] | None = None
        self._batched = False

    @workflow.signal(name=GATE_ACQUIRE_SIGNAL)
    def acquire(self, request: GateRequest) -> None:
        if add_request(self._state, request):
            self._regrant.append(request.workflow_id)
        self._changed = True

    @workflow.signal(name=GATE_RELEASE_SIGNAL)
    def release(self, run_workflow_id: str) -> None:
        release(self._state, run_workflow_id)
        self._changed = True

    @workflow.run
    async def run(self, state: GateState) -> None:
        state = self._state
        idle_since = workflow.now()
        checked = workflow.now()
        background = workflow.patched(GATE_PATCH)
        self._batched = workflow.patched(GRANT_PATCH)
        max_history = MAX_HISTORY if background else LEGACY_MAX_HISTORY
        while True:
            now = workflow.now()
            granted = [r.workflow_id for r in next_grants(state, now)]
            granted += self._regrant
            self._regrant = []
            if self._batched:
                if granted:
                    self._grant_batch(granted)
            else:
                for wid in granted:
                    self._grant(wid)
            self._changed = False
            if workflow.info().get_current_history_length() > max_history or (
                workflow.info().is_continue_as_new_suggested()
            ):
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._drain_grants()
                if self._checking is not None:
                    await self._checking
                workflow.continue_as_new(state)
            busy = bool(state.holders or state.queue)
            if busy:
                idle_since = now
            elif now - idle_since >= IDLE_CLOSE and not state.starts:
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._drain_grants()
                return
            # Wake on a signal, when the rate window lets the next start through, to
            # check holders while someone waits, or to close when idle. One timer at a
            # time (re-armed when it fires, not on every signal: a busy gate would
            # otherwise start and cancel a timer per signal).
            wake = now + (CHECK_INTERVAL if state.queue else IDLE_CLOSE)
            rate = next_rate_slot(state)
            if rate is not None:
                wake = min(wake, rate)
            if self._timer is None or self._timer.done() or wake < self._timer_at:
                if self._timer is not None and not self._timer.done():
                    self._timer.cancel()
                self._timer_at = wake
                self._timer = asyncio.create_task(
                    workflow.sleep(max(wake - now, timedelta(milliseconds=1)))
                )
            await workflow.wait_condition(self._woken)
            if state.queue and state.holders and workflow.now() - checked >= CHECK_INTERVAL:
                if not background:
                    checked = workflow.now()
                    await self._check(sorted(state.holders))
                elif self._checking is None or self._checking.done():
                    # In the background: the gate goes on granting the slots that
                    # releases free while Temporal describes the holders.
                    checked = workflow.now()
                    self._checking = asyncio.create_task(self._check(sorted(state.holders)))

    async def _check(self, holders: list[str]) -> None:
        """Free the slots of holders whose runs ended without releasing them."""
        closed: list[str] = await workflow.execute_activity(
            GATE_CHECK_ACTIVITY,
            holders,
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=30),
        )
        self._free(closed)

    def _free(self, run_workflow_ids: list[str]) -> None:
        """Free the slots (or queue places) of runs that are gone."""
        for wid in run_workflow_ids:
            release(self._state, wid)
        if run_workflow_ids:
            self._changed = True

    def _woken(self) -> bool:
        return self._changed or self._timer is None or self._timer.done()

    def _grant_batch(self, run_workflow_ids: list[str]) -> None:
        """Tell these runs they hold a slot (a local activity signals them side by side);
        the runs that are gone free theirs again."""
        self._track(asyncio.create_task(self._send_grants(run_workflow_ids)))

    async def _send_grants(self, run_workflow_ids: list[str]) -> None:
        gone: list[str] = await workflow.execute_local_activity(
            GATE_GRANT_ACTIVITY,
            run_workflow_ids,
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=30),
        )
        self._free(gone)

    def _grant(self, run_workflow_id: str) -> None:
        """Tell the run it holds a slot; a run that is gone frees it again."""
        self._track(asyncio.create_task(self._send_grant(run_workflow_id)))

    def _track(self, task: asyncio.Task[None]) -> None:
        """A grant in flight (continue-as-new and closing wait for them)."""
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_grant(self, run_workflow_id: str) -> None:
        try:
            await workflow.get_external_workflow_handle(run_workflow_id).signal(GRANT_SIGNAL)
        except Exception:  # the run has ended meanwhile (not found): the slot is free
            release(self._state, run_workflow_id)
            self._changed = True

    async def _drain_grants(self) -> None:
        while self._sending:
            await workflow.wait(list(self._sending))

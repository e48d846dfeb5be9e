"""A run's event inbox and human task board (workflow state, pure code)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tempoflow.definition.validation import instance_errors
from tempoflow.error_types import ErrorType
from tempoflow.jsonschema_safe import safe_validator
from temporal_workflows.models import EventDelivery, StepDecision, TaskCompletion

MAX_PROCESSED = 10_000
"""Event ids a run remembers as applied (oldest forgotten first); kept as 16-character
digests so the set stays small in continue-as-new input (~200 KB at most)."""
MAX_INBOX = 1_000
"""Delivered events kept for a later wait; beyond it the inbox refuses (back-pressure)."""
MAX_INBOX_BYTES = 512 * 1024
"""...and at most this much payload (Temporal caps one payload at 2 MB)."""
MAX_SIGNALS = 2_000
"""Signals one execution takes before a waiting run continues as new (Temporal refuses
signals beyond ``history.maximumSignalsPerExecution``, 10,000 by default)."""


def _digest(event_id: str) -> str:
    return hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()


def _order(event: EventDelivery) -> tuple[datetime, int]:
    return event.received_at, event.seq


def _size(event: EventDelivery) -> int:
    return len(json.dumps(event.payload, separators=(",", ":")))


class Mailbox:
    """Delivered events not yet taken by a wait, and the ids of applied events.

    Bounded without loss: beyond ``MAX_INBOX`` events or ``MAX_INBOX_BYTES`` it refuses
    an event (unless a running wait needs it and holds none), and ``on_refused`` records
    the refusal; the event stays in the database inbox, and the run's next wait on its
    key reads it back (``register_wait`` returns unapplied events delivered to the run).
    """

    def __init__(self, on_refused: Callable[[EventDelivery], None] | None = None) -> None:
        self.inbox: list[EventDelivery] = []
        self._sizes: dict[str, int] = {}
        self._processed: dict[str, None] = {}
        self._wanted: list[tuple[list[str], str]] = []
        self.on_refused = on_refused
        self.signals = 0
        """Events delivered by signal in this execution (Temporal caps signals per run)."""

    def restore(self, processed: list[str], inbox: list[EventDelivery]) -> None:
        for digest in processed:
            self._processed[digest] = None
        for event in inbox:
            self.deliver(event, force=True)

    @property
    def processed(self) -> list[str]:
        return list(self._processed)

    def is_applied(self, event_id: str) -> bool:
        return _digest(event_id) in self._processed

    def receive(self, event: EventDelivery) -> bool:
        """An event signalled to the run (counted: Temporal caps signals per execution)."""
        self.signals += 1
        return self.deliver(event)

    def _full(self, size: int) -> bool:
        return len(self.inbox) >= MAX_INBOX or sum(self._sizes.values()) + size > MAX_INBOX_BYTES

    def deliver(self, event: EventDelivery, *, force: bool = False) -> bool:
        """Keep ``event`` for a wait unless it was applied or is already here; refuse it
        (``on_refused``) when the inbox is full, unless ``force`` or a running wait needs
        it. Returns whether it was kept."""
        if self.is_applied(event.id) or event.id in self._sizes:
            return False
        size = _size(event)
        if not force and self._full(size) and not self._wanted_now(event):
            if self.on_refused is not None:
                self.on_refused(event)
            return False
        self.inbox.append(event)
        self._sizes[event.id] = size
        return True

    def _wanted_now(self, event: EventDelivery) -> bool:
        return any(
            event.name in names and event.correlation_key == key and not self.has(names, key)
            for names, key in self._wanted
        )

    def want(self, names: list[str], key: str) -> tuple[list[str], str]:
        """A wait is running for ``names``/``key``: its first event is never refused."""
        entry = (names, key)
        self._wanted.append(entry)
        return entry

    def unwant(self, entry: tuple[list[str], str]) -> None:
        self._wanted.remove(entry)

    def budget(self, names: list[str], key: str) -> tuple[int, int]:
        """How many events (and payload bytes) a registration for ``names``/``key`` may
        return: the free room plus what the inbox already holds of that key (returned
        again, and ignored), and always at least one event."""
        held = [e for e in self.inbox if e.name in names and e.correlation_key == key]
        free = max(MAX_INBOX - len(self.inbox), 0)
        free_bytes = max(MAX_INBOX_BYTES - sum(self._sizes.values()), 0)
        held_bytes = sum(self._sizes[e.id] for e in held)
        return max(free + len(held), 1), free_bytes + held_bytes

    def _index(self, names: list[str], key: str) -> int | None:
        """The oldest matching event in inbox order (signals may arrive out of order)."""
        found: int | None = None
        for index, event in enumerate(self.inbox):
            if event.name in names and event.correlation_key == key:
                if found is None or _order(event) < _order(self.inbox[found]):
                    found = index
        return found

    def has(self, names: list[str], key: str) -> bool:
        return self._index(names, key) is not None

    def pop(self, names: list[str], key: str) -> EventDelivery | None:
        """The oldest event for ``names`` and ``key``, removed from the inbox."""
        index = self._index(names, key)
        if index is None:
            return None
        event = self.inbox.pop(index)
        del self._sizes[event.id]
        return event

    def applied(self, event_id: str) -> None:
        self._processed[_digest(event_id)] = None
        while len(self._processed) > MAX_PROCESSED:
            del self._processed[next(iter(self._processed))]


@dataclass
class OpenTask:
    form: dict[str, Any]
    completion: TaskCompletion | None = None
    completed_at: datetime | None = None
    validator: Any = field(default=None, repr=False)

    def errors(self, data: Any) -> list[dict[str, Any]]:
        if self.validator is None:
            self.validator = safe_validator(self.form)
        # Sent as the TaskDataInvalid details; the API reads them back as ErrorItems.
        return [
            e.model_dump(exclude_none=True) for e in instance_errors(self.validator, data, "/data")
        ]


MAX_REMEMBERED_TASKS = 1_000


class TaskBoard:
    """The run's open human tasks, completed through an Update."""

    def __init__(self) -> None:
        self.tasks: dict[str, OpenTask] = {}
        self.completed: dict[str, str] = {}
        """Tasks this execution closed with a completion (id → completed by), so a late
        second completion hears "already completed", not "not open"."""

    def open(self, task_id: str, form: dict[str, Any]) -> OpenTask:
        task = self.tasks[task_id] = OpenTask(form)
        return task

    def close(self, task_id: str) -> None:
        task = self.tasks.pop(task_id, None)
        if task is not None and task.completion is not None:
            self.completed[task_id] = task.completion.completed_by
            while len(self.completed) > MAX_REMEMBERED_TASKS:
                del self.completed[next(iter(self.completed))]


@dataclass
class PendingDecision:
    """An ``action.call`` with ``onFailure: "ask"`` waiting for an operator."""

    failure: dict[str, Any]
    decision: StepDecision | None = None


def decision_key(step_path: str, loop: str | None) -> str:
    return step_path if loop is None else f"{step_path}@{loop}"


class DecisionBoard:
    """Steps waiting for an operator's decision, decided through an Update."""

    def __init__(self) -> None:
        self.pending: dict[str, PendingDecision] = {}
        self.decided: dict[str, str] = {}
        """Decisions this execution took (key → decided by): a late second decision hears
        "already made", not "not pending"."""

    def open(self, key: str, failure: dict[str, Any]) -> PendingDecision:
        self.decided.pop(key, None)  # asked again (a retry failed again)
        pending = self.pending[key] = PendingDecision(failure)
        return pending

    def refusal(self, key: str) -> tuple[str, str | None] | None:
        """Why a decision for ``key`` is refused: (error type, decided by), or None."""
        pending = self.pending.get(key)
        if pending is not None and pending.decision is None:
            return None
        if pending is not None and pending.decision is not None:
            return ErrorType.DECISION_ALREADY_MADE, pending.decision.decided_by
        if key in self.decided:
            return ErrorType.DECISION_ALREADY_MADE, self.decided[key]
        return ErrorType.DECISION_NOT_PENDING, None

    def close(self, key: str) -> None:
        pending = self.pending.pop(key, None)
        if pending is not None and pending.decision is not None:
            self.decided[key] = pending.decision.decided_by
            while len(self.decided) > MAX_REMEMBERED_TASKS:
                del self.decided[next(iter(self.decided))]

"""A run's event inbox and human task board (workflow state, pure code)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonschema

from tempoflow.definition.validation import instance_errors
from temporal_workflows.models import EventDelivery, TaskCompletion

MAX_PROCESSED = 10_000
"""Event ids a run remembers as applied (oldest forgotten first); kept as 16-character
digests so the set stays small in continue-as-new input (~200 KB at most)."""
MAX_INBOX = 1_000
"""Delivered events kept for a later wait (oldest dropped first)."""
MAX_INBOX_BYTES = 512 * 1024
"""...and at most this much payload (Temporal caps one payload at 2 MB)."""


def _digest(event_id: str) -> str:
    return hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()


def _order(event: EventDelivery) -> tuple[datetime, int]:
    return event.received_at, event.seq


class Mailbox:
    """Delivered events not yet taken by a wait, and the ids of applied events."""

    def __init__(self) -> None:
        self.inbox: list[EventDelivery] = []
        self._sizes: dict[str, int] = {}
        self._processed: dict[str, None] = {}

    def restore(self, processed: list[str], inbox: list[EventDelivery]) -> None:
        for digest in processed:
            self._processed[digest] = None
        for event in inbox:
            self.deliver(event)

    @property
    def processed(self) -> list[str]:
        return list(self._processed)

    def is_applied(self, event_id: str) -> bool:
        return _digest(event_id) in self._processed

    def deliver(self, event: EventDelivery) -> bool:
        """Keep ``event`` for a wait unless it was applied or is already here."""
        if self.is_applied(event.id) or event.id in self._sizes:
            return False
        self.inbox.append(event)
        self._sizes[event.id] = len(json.dumps(event.payload, separators=(",", ":")))
        total = sum(self._sizes.values())
        while len(self.inbox) > MAX_INBOX or (total > MAX_INBOX_BYTES and len(self.inbox) > 1):
            dropped = self.inbox.pop(0)
            total -= self._sizes.pop(dropped.id)
        return True

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
            self.validator = jsonschema.validators.validator_for(self.form)(self.form)
        return instance_errors(self.validator, data, "/data")


class TaskBoard:
    """The run's open human tasks, completed through an Update."""

    def __init__(self) -> None:
        self.tasks: dict[str, OpenTask] = {}

    def open(self, task_id: str, form: dict[str, Any]) -> OpenTask:
        task = self.tasks[task_id] = OpenTask(form)
        return task

    def close(self, task_id: str) -> None:
        self.tasks.pop(task_id, None)

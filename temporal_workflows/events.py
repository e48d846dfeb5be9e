"""A run's event inbox and human task board (workflow state, pure code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonschema

from tempoflow.definition.validation import instance_errors
from temporal_workflows.models import EventDelivery, TaskCompletion

MAX_PROCESSED = 10_000
"""Event ids a run remembers as applied (oldest forgotten first)."""
MAX_INBOX = 1_000
"""Delivered events kept for a later wait (oldest dropped first)."""


class Mailbox:
    """Delivered events not yet taken by a wait, and the ids of applied events."""

    def __init__(self) -> None:
        self.inbox: list[EventDelivery] = []
        self._processed: dict[str, None] = {}

    def restore(self, processed: list[str], inbox: list[EventDelivery]) -> None:
        for event_id in processed:
            self._processed[event_id] = None
        for event in inbox:
            self.deliver(event)

    @property
    def processed(self) -> list[str]:
        return list(self._processed)

    def deliver(self, event: EventDelivery) -> bool:
        """Keep ``event`` for a wait unless it was applied or is already here."""
        if event.id in self._processed or any(e.id == event.id for e in self.inbox):
            return False
        self.inbox.append(event)
        del self.inbox[:-MAX_INBOX]
        return True

    def _index(self, names: list[str], key: str) -> int | None:
        """The oldest matching event by receipt (the inbox order is arrival order, which
        differs when a signal overtakes a buffered event)."""
        found: int | None = None
        for index, event in enumerate(self.inbox):
            if event.name in names and event.correlation_key == key:
                if found is None or event.received_at < self.inbox[found].received_at:
                    found = index
        return found

    def has(self, names: list[str], key: str) -> bool:
        return self._index(names, key) is not None

    def pop(self, names: list[str], key: str) -> EventDelivery | None:
        """The oldest event for ``names`` and ``key``, removed from the inbox."""
        index = self._index(names, key)
        return None if index is None else self.inbox.pop(index)

    def applied(self, event_id: str) -> None:
        self._processed[event_id] = None
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

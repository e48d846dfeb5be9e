"""The retry policy and timeouts an ``action.call`` step is scheduled with.

Four levels, field by field, the first that writes a field wins:

1. the step (``retry``, ``timeouts``; its ``timeout`` is its ``startToClose`` when
   ``timeouts.startToClose`` is not given);
2. the definition's ``actionDefaults``;
3. the action's declared defaults (resolved from the API's registry when the version was
   published and pinned with it: ``RunInput.action_defaults``);
4. the built-in defaults (:class:`RetryPolicy`'s defaults, one minute start-to-close).

"Writes" means the field appears in that level's JSON (pydantic's ``model_fields_set``),
so the merge reads only the run's pinned input and is deterministic. A run without
``actionDefaults`` nor pinned action defaults is scheduled exactly as before they existed.

An action's pinned declaration may also hold ``"local": true`` (the action declares
itself local, ``ActionSpec.local``): its steps run as Temporal local activities, unless
the merged timeouts ask for a heartbeat (a local activity has none). Only the pinned
declaration says so (a definition's ``actionDefaults`` cannot), so runs of versions
published before an action became local keep scheduling it as a regular activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tempoflow.definition.model import ActionCall, ActionDefaults, RetryPolicy, Timeouts

BUILTIN_START_TO_CLOSE = timedelta(minutes=1)
LOCAL_KEY = "local"
"""The key of a pinned action declaration marking the action local."""


@dataclass(frozen=True)
class ActionOptions:
    """What the activity is scheduled with."""

    retry: RetryPolicy
    start_to_close: timedelta
    schedule_to_close: timedelta | None
    heartbeat: timedelta | None
    local: bool = False
    """Run as a local activity (declared local, pinned, and no heartbeat timeout)."""


def _pick(levels: list[Any], field: str) -> Any:
    """The value of the first level that writes ``field`` (``None``: none does)."""
    for level in levels:
        if level is not None and field in level.model_fields_set:
            value = getattr(level, field)
            if value is not None:
                return value
    return None


def parse_defaults(raw: Any) -> ActionDefaults | None:
    """An ``actionDefaults`` object (a definition's, or an action's pinned declaration)."""
    return None if raw is None else ActionDefaults.model_validate(raw)


def parse_declared(raw: Any) -> tuple[ActionDefaults | None, bool]:
    """An action's pinned declaration: its defaults, and whether it is local."""
    if not isinstance(raw, dict) or LOCAL_KEY not in raw:
        return parse_defaults(raw), False
    rest = {k: v for k, v in raw.items() if k != LOCAL_KEY}
    return parse_defaults(rest), raw[LOCAL_KEY] is True


def resolve_options(
    step: ActionCall,
    definition: ActionDefaults | None = None,
    declared: ActionDefaults | None = None,
    *,
    local: bool = False,
) -> ActionOptions:
    """Merge the levels for ``step`` (see the module docstring)."""
    retries = [
        step.retry if "retry" in step.model_fields_set else None,
        definition.retry if definition else None,
        declared.retry if declared else None,
    ]
    merged = {
        field: value
        for field in RetryPolicy.model_fields
        if (value := _pick(retries, field)) is not None
    }
    timeouts: list[Timeouts | None] = [
        step.timeouts,
        definition.timeouts if definition else None,
        declared.timeouts if declared else None,
    ]
    start = step.timeouts.startToClose
    if start is None and "timeout" in step.model_fields_set:
        start = step.timeout
    heartbeat = _pick(timeouts, "heartbeat")
    return ActionOptions(
        retry=RetryPolicy(**merged),
        start_to_close=start or _pick(timeouts, "startToClose") or BUILTIN_START_TO_CLOSE,
        schedule_to_close=_pick(timeouts, "scheduleToClose"),
        heartbeat=heartbeat,
        local=local and heartbeat is None,
    )

"""Control-flow signals inside the interpreter (never leave the workflow)."""

from __future__ import annotations

from typing import Any

from tempoflow.error_types import ErrorType
from tempoflow.errors import TempoflowBaseError


class StepFailure(TempoflowBaseError):
    """A step failed; ``type`` is what ``catchOn`` lists and what the run's error shows.

    Attributes:
        type: an :class:`~tempoflow.error_types.ErrorType`, or an action's own type.
        message: what went wrong, for a person.
        path: the failing step's JSON pointer (``None`` until the interpreter fills it).
        details: JSON details of the type (an action's, an expression's code…).
        attempt: the action attempt that failed (``action.call`` only).
        catchable: ``False`` for conditions no definition can handle (the run's history
            or state outgrew what Temporal holds): ``tryCatch`` runs its ``finally`` but
            does not catch them, and loops or branches set to ``continue`` stop anyway.
    """

    def __init__(
        self,
        type: ErrorType | str,
        message: str,
        path: str | None,
        details: Any = None,
        *,
        catchable: bool = True,
    ) -> None:
        """``path`` is the failing step's pointer; ``None`` lets the interpreter fill it."""
        super().__init__(message)
        self.type = type
        self.message = message
        self.path = path
        self.details = details
        self.attempt: int | None = None
        self.catchable = catchable

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "stepPath": self.path,
            "details": self.details,
            "attempt": self.attempt,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepFailure:
        """The failure :meth:`to_dict` saved (across continue-as-new)."""
        failure = cls(data["type"], data["message"], data.get("stepPath"), data.get("details"))
        failure.attempt = data.get("attempt")
        return failure


class RunReturned(Exception):
    """``control.return`` ended the run with ``output``."""

    def __init__(self, output: Any) -> None:
        super().__init__("run returned")
        self.output = output
        self.recorded = False
        """The step that returned has projected ``output`` (enclosing steps do not)."""


class ContinueAsNew(Exception):
    """Unwinds the interpreter to continue as new; each frame adds where it was."""

    def __init__(self) -> None:
        super().__init__("continue as new")
        self.positions: dict[str, Any] = {}


def position_key(path: str, loop: str | None) -> str:
    return f"{path}@{loop or ''}"

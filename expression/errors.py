"""Typed expression errors."""

from __future__ import annotations

from typing import Any


class ExpressionError(Exception):
    """A JSONata expression failed to compile or evaluate.

    Attributes:
        code: JSONata error code (``S0201``, ``T2001``…) or one of ours (``TF…``).
        position: character offset in ``expression`` where the problem was found.
        path: JSON pointer of the expression inside the definition, when known.
        hint: how to fix it, for errors where we know (``TF1003``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        expression: str,
        position: int | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.expression = expression
        self.position = position
        self.path = path
        self.hint = hint

    def with_path(self, path: str) -> ExpressionError:
        """Return a copy that knows where in the definition the expression sits."""
        return ExpressionError(
            self.code,
            self.message,
            expression=self.expression,
            position=self.position,
            path=path,
            hint=self.hint,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "position": self.position,
            "expression": self.expression,
            "path": self.path,
        }

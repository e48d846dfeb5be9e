"""Expected vs actual, as a list of differences each at a JSON pointer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tempoflow.jsonpointer import escape

MAX_SHOWN = 300
"""Characters of a value a difference shows (the rest is cut with an ellipsis)."""


@dataclass(frozen=True)
class Difference:
    path: str
    """A JSON pointer: ``/output/status``, ``/steps/charge/0/error/type``."""
    expected: Any
    actual: Any
    note: str | None = None

    def describe(self) -> str:
        if self.note is not None:
            return f"at {self.path}: {self.note}"
        return f"at {self.path}: expected {show(self.expected)}, got {show(self.actual)}"

    def to_dict(self) -> dict[str, Any]:
        out = {"path": self.path, "expected": self.expected, "actual": self.actual}
        if self.note is not None:
            out["note"] = self.note
        return out


class _Missing:
    def __repr__(self) -> str:
        return "(nothing)"


MISSING: Any = _Missing()
ANY = "$any"


def show(value: Any) -> str:
    if value is MISSING:
        return "(nothing)"
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _same_scalar(expected: Any, actual: Any) -> bool:
    # JSON has one number type: 2 == 2.0, but true is not 1.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def diff(expected: Any, actual: Any, path: str, *, partial: bool = False) -> list[Difference]:
    """Where ``actual`` differs from ``expected``. ``partial``: at the top level, only the
    keys ``expected`` names are compared (values below them exactly).

    Two matchers stand for values a scenario cannot know: ``"$any"`` (any value, even
    ``null``, but present) and ``{"$contains": "text"}`` (a string containing it).
    """
    if expected == ANY and actual is not MISSING:
        return []
    if isinstance(expected, dict) and set(expected) == {"$contains"}:
        needle = expected["$contains"]
        if isinstance(actual, str) and isinstance(needle, str) and needle in actual:
            return []
        return [
            Difference(
                path,
                expected,
                actual,
                f"expected a string containing {show(needle)}, got {show(actual)}",
            )
        ]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[Difference] = []
        for key in expected:
            here = f"{path}/{escape(key)}"
            if key not in actual:
                out.append(Difference(here, expected[key], MISSING))
            else:
                out += diff(expected[key], actual[key], here)
        if not partial:
            for key in actual:
                if key not in expected:
                    out.append(Difference(f"{path}/{escape(key)}", MISSING, actual[key]))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        out = []
        for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
            out += diff(want, got, f"{path}/{index}")
        if len(expected) != len(actual):
            out.append(
                Difference(
                    path,
                    expected,
                    actual,
                    f"expected {len(expected)} item(s), got {len(actual)}: "
                    f"expected {show(expected)}, got {show(actual)}",
                )
            )
        return out
    if isinstance(expected, dict | list) or isinstance(actual, dict | list):
        return [Difference(path, expected, actual)]
    return [] if _same_scalar(expected, actual) else [Difference(path, expected, actual)]

"""Built-ins whose work inside one call can outgrow the step budget, metered.

jsonata-python does some work in a single Python call that no step counter sees:
``$distinct`` compares every pair (quadratic), ``$replace`` with a string pattern copies
the rest of the string at every match, regex functions build a Python object per match.
These versions charge the evaluation's step budget for that work, before or while doing
it, so a hostile call ends in ``TF2001`` instead of running for seconds (see
``MEASUREMENTS.md``). Runs started before metering existed evaluate with the library's
own functions (their histories must replay unchanged): see ``ExpressionLimits.metered``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from jsonata import utils
from jsonata.jsonata import Jsonata

MATCH_COST = 2
"""Steps per regex match (each builds Python objects: ~5-8 µs measured)."""
SCAN_CHARS = 2000
"""Characters a built-in may scan or copy per step."""


class Meter(Protocol):
    metered: bool

    def charge(self, steps: int) -> None: ...


def current_meter() -> Meter | None:
    """The evaluation running on this thread, when it meters built-ins."""
    current = getattr(Jsonata.CURRENT, "jsonata", None)
    if current is not None and getattr(current, "metered", False):
        return current
    return None


def charge(steps: int) -> None:
    """Charge the current evaluation (no-op outside a metered evaluation)."""
    meter = current_meter()
    if meter is not None and steps > 0:
        meter.charge(steps)


Impl = Callable[[Meter, Any, Any, list[Any]], Any]


class _MeteredBuiltin(Jsonata.JFunction):
    """A standard function with the library's signature, metered when the evaluation
    asks for it and the library's own otherwise."""

    def __init__(self, name: str, impl: Impl) -> None:
        self.original = Jsonata.static_frame.lookup(name)
        self.function = None
        self.signature = self.original.signature
        self.function_name = name
        self.impl = impl

    def call(self, input: Any, args: Any) -> Any:
        meter = current_meter()
        if meter is None:
            return self.original.call(input, args)
        return self.impl(meter, self.original, input, list(args or []))

    def get_number_of_args(self) -> int:
        return int(self.original.get_number_of_args())


def _key(value: Any, nodes: list[int]) -> Any:
    """Hashable form under JSONata's deep equality (``true`` is not ``1``); counts the
    containers it walks in ``nodes[0]``."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)  # 1 and 1.0 hash and compare alike
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        nodes[0] += len(value)
        return ("a", tuple(_key(v, nodes) for v in value))
    if isinstance(value, dict):
        nodes[0] += len(value)
        return ("o", frozenset((k, _key(v, nodes)) for k, v in value.items()))
    if value is None or value is utils.Utils.NULL_VALUE:
        return ("z",)
    return ("f", id(value))


def _distinct(meter: Meter, original: Any, input: Any, args: list[Any]) -> Any:
    arr = args[0] if args else None
    if not isinstance(arr, list) or len(arr) <= 1:
        return original.call(input, args)
    meter.charge(len(arr) // 4)
    seen: set[Any] = set()
    out = utils.Utils.create_sequence() if isinstance(arr, utils.Utils.JList) else []
    nodes = [0]
    for item in arr:
        key = _key(item, nodes)
        if nodes[0] >= 100:  # nested values: a step per 2 values walked
            meter.charge(nodes[0] // 2)
            nodes[0] = 0
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _replace(meter: Meter, original: Any, input: Any, args: list[Any]) -> Any:
    string = args[0] if args else None
    pattern = args[1] if len(args) > 1 else None
    if isinstance(string, str) and isinstance(pattern, str) and pattern:
        # The library slices the rest of the string at every match (quadratic).
        found = string.count(pattern)
        limit = args[3] if len(args) > 3 else None
        if isinstance(limit, int | float) and not isinstance(limit, bool) and limit >= 0:
            found = min(found, int(limit))
        meter.charge(MATCH_COST * found + found * len(string) // (2 * SCAN_CHARS * 20))
    return original.call(input, args)


METERED: dict[str, Jsonata.JFunction] = {
    "distinct": _MeteredBuiltin("distinct", _distinct),
    "replace": _MeteredBuiltin("replace", _replace),
}
"""Bound over the library's functions in every compiled expression."""

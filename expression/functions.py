"""The function allow-list and the functions bound to the caller's clock and randomness."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from typing import Any

from jsonata import jexception, utils
from jsonata.functions import Functions
from jsonata.jsonata import Jsonata

# Standard library functions available in definitions ($eval is not: expressions must
# be fully known at publish time).
BUILTIN = frozenset(Jsonata.static_frame.bindings)
STANDARD = BUILTIN - {"eval"}
# Ours, beside the standard ones.
EXTRA = frozenset({"nowIso", "uuid", "parseJson", "coalesce"})
ALLOWED = STANDARD | EXTRA
# Read the workflow's clock or random source instead of the machine's.
BOUND_TO_CALLER = frozenset({"now", "millis", "random", "shuffle", "uuid", "nowIso"})


class GuardError(jexception.JException):
    """Our own evaluation error, carried through jsonata-python unchanged.

    It subclasses the library's exception because jsonata-python turns any other
    exception raised inside ``and``/``or`` into a generic "Unexpected" error.
    """

    def __init__(self, code: str, message: str, position: int | None = None) -> None:
        RuntimeError.__init__(self, message)
        self.error = code
        self.location = position if position is not None else -1
        self.current = self.expected = self.extra = self.type = self.remaining = None
        self.code = code
        self.message = message
        self.position = position
        self.pattern: str | None = None
        """The regular expression, for ``TF1201`` (its position is found from it)."""


class FunctionFailure(GuardError):
    """Raised by our functions; the engine turns it into an ExpressionError."""


class _Native(Jsonata.JFunctionCallable):
    """Adapter giving a Python callable JSONata's native-function calling convention."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def call(self, input: Any, args: Any) -> Any:
        return self.fn(*(args or []))


def function(fn: Callable[..., Any], signature: str) -> Jsonata.JFunction:
    """A JSONata function with a signature (so arguments are validated like built-ins)."""
    return Jsonata.JFunction(_Native(fn), signature)


def iso_utc(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as err:
        raise FunctionFailure("TF1101", f"$parseJson: not JSON ({err})") from None


def _coalesce(*args: Any) -> Any:
    """The first argument that has a value: neither undefined (a missing field, an empty
    result) nor JSON ``null``. Every other value counts, ``""``, ``0``, ``false``, ``[]``
    and ``{}`` included. With none: ``null`` when an argument was ``null``, else
    undefined."""
    saw_null = False
    for arg in args:
        if arg is None:
            continue
        if arg is utils.Utils.NULL_VALUE:
            saw_null = True
            continue
        return arg
    return utils.Utils.NULL_VALUE if saw_null else None


def _eval_refused(*_args: Any) -> Any:
    raise FunctionFailure("TF3001", "$eval is not allowed in definitions")


def _named(functions: dict[str, Jsonata.JFunction]) -> dict[str, Jsonata.JFunction]:
    """Name each function's signature (error messages say which function failed)."""
    for name, fn in functions.items():
        if fn.signature is not None:
            fn.signature.set_function_name(name)
    return functions


# Bound once per compiled expression (they do not depend on the caller).
STATIC_BINDINGS = _named(
    {
        "parseJson": function(_parse_json, "<s-:x>"),
        "coalesce": function(_coalesce, "<x+:x>"),
        "eval": function(_eval_refused, "<xx?:x>"),
    }
)


def caller_bindings(
    now: Callable[[], _dt.datetime], random: Callable[[], float], uuid: Callable[[], str]
) -> dict[str, Any]:
    """Functions reading the caller's deterministic clock and random source."""

    def millis() -> int:
        return int(now().timestamp() * 1000)

    def now_fn(picture: str | None = None, timezone: str | None = None) -> str | None:
        if picture is None and timezone is None:
            return iso_utc(now())
        return Functions.datetime_from_millis(millis(), picture, timezone)

    def shuffle(items: Any) -> Any:
        if items is None:
            return None
        out = list(items) if isinstance(items, list) else [items]
        for i in range(len(out) - 1, 0, -1):  # Fisher-Yates on the caller's randomness
            j = int(random() * (i + 1))
            out[i], out[j] = out[j], out[i]
        return out

    return _named(
        {
            "now": function(now_fn, "<s?s?:s>"),
            "nowIso": function(lambda: iso_utc(now()), "<:s>"),
            "millis": function(millis, "<:n>"),
            "random": function(random, "<:n>"),
            "shuffle": function(shuffle, "<a:a>"),
            "uuid": function(uuid, "<:s>"),
        }
    )

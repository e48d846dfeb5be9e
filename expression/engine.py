"""Compile and evaluate JSONata with a per-thread compile cache.

Workflow code imports this module through the sandbox pass-through (jsonata-python keeps
per-thread parser state that the sandbox would otherwise block), so the cache is shared
by every run on a worker.

Determinism: ``$now()``, ``$millis()`` and ``$random()`` are bound to values the caller
supplies in :class:`EvalContext` (in workflow code ``workflow.now()`` and
``workflow.random()``), so a replay evaluates to the same values.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jsonata import jexception
from jsonata.jsonata import Jsonata

from expression.errors import ExpressionError

_CACHE_LIMIT = 4096
_local = threading.local()


def _cache() -> dict[str, Jsonata]:
    cache: dict[str, Jsonata] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = {}
        _local.cache = cache
    return cache


def _from_jexception(err: jexception.JException, expression: str) -> ExpressionError:
    message = str(err)
    return ExpressionError(
        err.error or "D0000", message, expression=expression, position=err.location
    )


def compile_expression(expression: str) -> Jsonata:
    """Compile ``expression`` (cached per thread) or raise :class:`ExpressionError`."""
    cache = _cache()
    compiled = cache.get(expression)
    if compiled is not None:
        return compiled
    try:
        compiled = Jsonata(expression)
    except jexception.JException as err:
        raise _from_jexception(err, expression) from None
    if compiled.errors:
        first = compiled.errors[0]
        if isinstance(first, jexception.JException):
            raise _from_jexception(first, expression)
        raise ExpressionError("S0500", str(first), expression=expression)
    # The envelope comes from JSON (pydantic), so jsonata's per-call walk of the whole
    # input to check JSON types would only cost time (see MEASUREMENTS.md).
    compiled.set_validate_input(False)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[expression] = compiled
    return compiled


def _fixed_clock() -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@dataclass(frozen=True)
class EvalContext:
    """What an evaluation may read besides the envelope: the clock and randomness."""

    now: Callable[[], _dt.datetime] = field(default=_fixed_clock)
    random: Callable[[], float] = field(default=lambda: 0.5)

    def bindings(self) -> dict[str, Any]:
        def millis() -> int:
            return int(self.now().timestamp() * 1000)

        def now_iso(*_args: Any) -> str:
            stamp = self.now().astimezone(_dt.UTC)
            return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

        return {
            "now": Jsonata.JLambda(now_iso),
            "millis": Jsonata.JLambda(millis),
            "random": Jsonata.JLambda(self.random),
        }


def evaluate(expression: str, envelope: Any, context: EvalContext | None = None) -> Any:
    """Evaluate ``expression`` against ``envelope`` and return a JSON value.

    Raises:
        ExpressionError: on a syntax or evaluation error (code and position included).
    """
    compiled = compile_expression(expression)
    # jsonata-python resolves higher-order function calls through the thread's
    # "current" instance; make it the expression being evaluated.
    Jsonata.CURRENT.jsonata = compiled
    try:
        return compiled.evaluate(envelope, (context or EvalContext()).bindings())
    except jexception.JException as err:
        raise _from_jexception(err, expression) from None
    except RecursionError:
        raise ExpressionError(
            "TF1001", "expression recursion too deep", expression=expression
        ) from None
    except Exception as err:
        # jsonata-python lets Python errors escape ($number('abc') → ValueError); in
        # workflow code they would fail the workflow task and retry forever.
        raise ExpressionError(
            "TF1000", f"evaluation failed: {type(err).__name__}: {err}", expression=expression
        ) from None


def truthy(value: Any) -> bool:
    """JSONata's ``$boolean`` casting, applied to an evaluation result."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        return any(truthy(v) for v in value)
    if isinstance(value, dict):
        return bool(value)
    return False

"""Compile and evaluate JSONata with deterministic guardrails.

One engine for publish time and run time. Facts about jsonata-python 0.7.1 that shape it
(measured, see ``MEASUREMENTS.md``):

- its timeout reads the wall clock and starts at compile time, and its depth counter is
  not reset after an error, so the guardrails here are our own: a step budget and a
  depth counter reset at every evaluation, a range/sequence cap, a string cap and an
  output cap; all count work, never time, so a replay fails or succeeds identically;
- some built-ins do seconds of work inside one call (a quadratic ``$distinct``, Python
  objects per regex match): that work is charged to the step budget too
  (``expression.metered``), and a thread-CPU-time backstop (``TF2007``), set far above
  what the counted budgets allow, catches work no counter sees;
- its per-call JSON validation walks the whole input, so it is off (the envelope comes
  from JSON) and compiled expressions are cached (per thread: evaluation keeps state on
  the instance);
- Python exceptions escape it (``$number('x')`` → ``ValueError``); they become
  :class:`ExpressionError` so a workflow never loops on a failing task;
- regex literals compile with RE2 (linear time), so no pattern can backtrack
  catastrophically; lookaround and backreferences are rejected at publish time.
"""

from __future__ import annotations

import datetime as _dt
import json
import random as _random
import threading
import time
import uuid as _uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from jsonata import jexception, utils
from jsonata.jsonata import Jsonata

from expression.errors import ExpressionError
from expression.functions import STATIC_BINDINGS, GuardError, caller_bindings
from expression.limits import DEFAULT_LIMITS, ExpressionLimits
from expression.metered import METERED
from expression.regex import re2_engine, regex_position

_CACHE_LIMIT = 4096
_local = threading.local()
_PAD = Jsonata.static_frame.lookup("pad")
_CLOCK_EVERY = 500  # steps between two reads of the thread's CPU clock (~2 ms of work)


class GuardedJsonata(Jsonata):
    """A compiled expression whose evaluation counts its work."""

    def __init__(self, expression: str) -> None:
        super().__init__(expression, regex_engine=re2_engine)
        for name, fn in (*STATIC_BINDINGS.items(), *METERED.items()):
            self.environment.bind(name, fn)
        # Evaluation moves ``self.environment`` to inner scopes; every run starts here.
        self._base_environment = self.environment
        self.set_validate_input(False)
        self._set_limits(DEFAULT_LIMITS)
        self._steps = 0
        self._depth = 0
        self._position: int | None = 0
        self._cpu_deadline: float | None = None
        self._next_clock = 0

    def _set_limits(self, limits: ExpressionLimits) -> None:
        self._limits = limits
        self._max_steps = limits.max_steps
        self._max_depth = limits.max_depth
        self._max_sequence = limits.max_sequence
        self.metered = limits.metered
        self._max_cpu = limits.max_cpu_ms / 1000 if limits.metered else None

    def charge(self, steps: int) -> None:
        """Charge work done inside a built-in to the step budget (see ``metered``)."""
        self._steps += steps
        if self._steps > self._max_steps:
            self._exceeded(None)
        if self._steps >= self._next_clock:
            self._check_clock()

    def _check_clock(self) -> None:
        """The backstop: thread CPU time of this evaluation, read every ~500 steps.

        The clock is first read after the first ~500 steps, and the budget counts from
        there: reading it costs a system call (a few µs, as much as a short expression
        costs), and the steps before are bounded work (~2 ms)."""
        self._next_clock = self._steps + _CLOCK_EVERY
        if self._max_cpu is None:
            return
        now = time.thread_time()
        if self._cpu_deadline is None:
            self._cpu_deadline = now + self._max_cpu
        elif now > self._cpu_deadline:
            raise GuardError(
                "TF2007",
                f"evaluation used more than {self._limits.max_cpu_ms} ms of CPU time",
                self._position,
            )

    # -- guardrails --------------------------------------------------------------------
    def eval(self, expr: Any, input: Any, environment: Any) -> Any:
        # Hot path: one call per AST node. Counters reset at every evaluation, so an
        # exception may leave ``_depth`` raised (no try/finally needed).
        self._steps += 1
        self._depth += 1
        if self._steps > self._max_steps or self._depth > self._max_depth:
            self._exceeded(expr)
        if self._steps >= self._next_clock:
            self._check_clock()
        self._position = expr.position
        # Not Jsonata.eval: it re-resolves the thread's current instance (this one) and
        # saves/restores context for $eval, which definitions cannot call.
        result = self._eval(expr, input, environment)
        self._depth -= 1
        if isinstance(result, list):
            # Building a sequence costs a step per 10 items: paths that fan out (a range
            # inside a path over a range) are stopped as they grow, not after.
            size = len(result)
            if size > self._max_sequence:
                raise GuardError(
                    "TF2003",
                    f"sequence of {size} items exceeds the limit ({self._max_sequence})",
                    expr.position,
                )
            self._steps += size // 10
        return result

    def _exceeded(self, expr: Any) -> None:
        position = expr.position if expr is not None else self._position
        if self._steps > self._max_steps:
            raise GuardError(
                "TF2001", f"evaluation step budget ({self._max_steps}) exhausted", position
            )
        raise GuardError(
            "TF2002",
            f"evaluation deeper than {self._max_depth} (unbounded recursion?)",
            position,
        )

    def evaluate_includes_expression(self, lhs: Any, rhs: Any) -> Any:
        if self.metered and isinstance(rhs, list):
            self.charge(len(rhs) // 10)  # a Python loop over rhs
        return super().evaluate_includes_expression(lhs, rhs)

    def evaluate_equality_expression(self, lhs: Any, rhs: Any, op: Any) -> Any:
        if self.metered:
            # Deep equality walks both values; their top-level size stands for the work.
            self.charge(sum(len(v) // 10 for v in (lhs, rhs) if isinstance(v, list | dict)))
        return super().evaluate_equality_expression(lhs, rhs, op)

    def evaluate_range_expression(self, lhs: Any, rhs: Any) -> Any:
        if (
            isinstance(lhs, int)
            and isinstance(rhs, int)
            and not isinstance(lhs, bool)
            and not isinstance(rhs, bool)
            and rhs >= lhs
        ):
            size = rhs - lhs + 1
            if size > self._limits.max_sequence:
                raise GuardError(
                    "TF2003",
                    f"range of {size} items exceeds the limit ({self._limits.max_sequence})",
                    self._position,
                )
        return super().evaluate_range_expression(lhs, rhs)

    def evaluate_string_concat(self, lhs: Any, rhs: Any) -> str:
        result = super().evaluate_string_concat(lhs, rhs)
        self._check_string(result)
        return result

    def apply(self, proc: Any, args: Any, input: Any, environment: Any) -> Any:
        if proc is _PAD and isinstance(args, list) and len(args) > 1:
            width = args[1]
            if isinstance(width, int | float) and abs(width) > self._limits.max_string:
                raise GuardError(
                    "TF2004",
                    f"$pad to {width} characters exceeds the string "
                    f"limit ({self._limits.max_string})",
                    self._position,
                )
        result = super().apply(proc, args, input, environment)
        if isinstance(result, str):
            self._check_string(result)
        elif isinstance(result, list):
            if len(result) > self._limits.max_sequence:
                raise GuardError(
                    "TF2003",
                    f"sequence of {len(result)} items exceeds the limit "
                    f"({self._limits.max_sequence})",
                    self._position,
                )
            self._steps += len(result)
        return result

    def _check_string(self, value: str) -> None:
        if len(value) > self._limits.max_string:
            raise GuardError(
                "TF2004",
                f"string of {len(value)} characters exceeds the limit ({self._limits.max_string})",
                self._position,
            )

    # -- evaluation --------------------------------------------------------------------
    def run(self, envelope: Any, bindings: Mapping[str, Any], limits: ExpressionLimits) -> Any:
        """Like ``Jsonata.evaluate``, with our bindings (clock included) and limits."""
        if self.errors is not None:
            raise jexception.JException("S0500", 0)
        env = self.create_frame(self._base_environment)
        # The functions were named when created; a dict update is all binding needs.
        env.bindings.update(bindings)
        env.bindings["$"] = envelope
        data = envelope
        if isinstance(data, list) and not utils.Utils.is_sequence(data):
            data = utils.Utils.create_sequence(data)
            data.outer_wrapper = True
        if limits is not self._limits:
            self._set_limits(limits)
        self._steps = self._depth = 0
        self._position = 0
        self._next_clock = _CLOCK_EVERY
        self._cpu_deadline = None
        # jsonata-python resolves higher-order calls through the thread's "current"
        # instance; make it this one.
        Jsonata.CURRENT.jsonata = self
        return utils.Utils.convert_nulls(self.eval(self.ast, data, env))


def _cache() -> dict[str, GuardedJsonata]:
    cache: dict[str, GuardedJsonata] | None = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    return cache


def _from_jexception(err: jexception.JException, expression: str) -> ExpressionError:
    position = err.location if isinstance(err.location, int) and err.location >= 0 else None
    if err.error == "S0211" and position is not None:
        double = _double_equals(expression, position)
        if double is not None:
            return double
    return ExpressionError(err.error or "D0000", str(err), expression=expression, position=position)


def _double_equals(expression: str, position: int) -> ExpressionError | None:
    """``==`` (or ``!==``, ``===``) where the parser stopped: JSONata has no such operator
    (jsonata-python reads ``a == b`` as ``a = (=b)`` and reports a unary ``=``), so say
    what was meant. ``position`` is where the parser stopped, just after the ``==``."""
    if expression[max(position - 2, 0) : position] != "==":
        return None
    start = position - 2
    if start > 0 and expression[start - 1] == "!":
        wrong, right, start, what = "!==", "!=", start - 1, "inequality"
    elif expression[position : position + 1] == "=":
        wrong, right, what = "===", "=", "equality"
    else:
        wrong, right, what = "==", "=", "equality"
    return ExpressionError(
        "TF1003",
        f"JSONata has no {wrong!r} operator; {what} is {right!r}",
        expression=expression,
        position=start,
        hint=f"write {right!r} (e.g. payload.status {right} 'paid'); position is where "
        f"{wrong!r} starts",
    )


def compile_expression(expression: str) -> GuardedJsonata:
    """Compile ``expression`` (cached per thread) or raise :class:`ExpressionError`."""
    cache = _cache()
    compiled = cache.get(expression)
    if compiled is not None:
        return compiled
    try:
        compiled = GuardedJsonata(expression)
    except GuardError as err:
        pattern = getattr(err, "pattern", None)
        position = regex_position(expression, pattern) if pattern is not None else None
        raise ExpressionError(
            err.code, err.message, expression=expression, position=position
        ) from None
    except jexception.JException as err:
        raise _from_jexception(err, expression) from None
    except Exception as err:  # jsonata-python's parser has crashes (IndexError…)
        raise ExpressionError(
            "TF1002", f"cannot parse: {type(err).__name__}: {err}", expression=expression
        ) from None
    if compiled.errors:
        first = compiled.errors[0]
        if isinstance(first, jexception.JException):
            raise _from_jexception(first, expression)
        raise ExpressionError("S0500", str(first), expression=expression)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[expression] = compiled
    return compiled


def _epoch() -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@dataclass(frozen=True)
class EvalContext:
    """What an evaluation may read besides the envelope: clock, randomness, limits.

    In workflow code: ``workflow.now``, ``workflow.random().random`` and
    ``workflow.uuid4``, so a replay evaluates to the same values. The defaults are fixed
    (epoch, a seeded generator) for publish-time checks and tests.
    """

    now: Callable[[], _dt.datetime] = field(default=_epoch)
    random: Callable[[], float] | None = None
    uuid: Callable[[], str] | None = None
    limits: ExpressionLimits = DEFAULT_LIMITS

    @cached_property
    def _seeded(self) -> _random.Random:
        return _random.Random(0)

    @cached_property
    def bindings(self) -> dict[str, Any]:
        rand = self.random or self._seeded.random
        make_uuid = self.uuid or (
            lambda: str(_uuid.UUID(int=self._seeded.getrandbits(128), version=4))
        )
        return caller_bindings(self.now, rand, make_uuid)

    @classmethod
    def wall_clock(cls, limits: ExpressionLimits = DEFAULT_LIMITS) -> EvalContext:
        """For evaluations outside workflows (event correlation, trigger filters): the
        current time, real randomness."""
        moment = _dt.datetime.now(_dt.UTC)
        return cls(
            now=lambda: moment,
            random=_random.random,
            uuid=lambda: str(_uuid.uuid4()),
            limits=limits,
        )


_DEFAULT_CONTEXT = EvalContext()


def evaluate(
    expression: str,
    envelope: Any,
    context: EvalContext | None = None,
    variables: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate ``expression`` against ``envelope``; the result is JSON.

    Raises:
        ExpressionError: on a syntax or evaluation error, or a guardrail (code,
            message and position included).
    """
    ctx = context or _DEFAULT_CONTEXT
    compiled = compile_expression(expression)
    bindings = ctx.bindings if not variables else {**ctx.bindings, **variables}
    try:
        result = compiled.run(envelope, bindings, ctx.limits)
    except GuardError as err:
        position = err.position if err.position is not None else compiled._position
        raise ExpressionError(
            err.code, err.message, expression=expression, position=position
        ) from None
    except jexception.JException as err:
        compiled.populate_message(err)
        raise _from_jexception(err, expression) from None
    except RecursionError:
        raise ExpressionError("TF2002", "evaluation too deep", expression=expression) from None
    except Exception as err:
        # jsonata-python lets Python errors escape ($number('abc') → ValueError); in
        # workflow code they would fail the workflow task and retry forever.
        raise ExpressionError(
            "TF1000",
            f"evaluation failed: {type(err).__name__}: {err}",
            expression=expression,
            position=compiled._position,
        ) from None
    _check_output(result, ctx.limits, expression)
    return result


def _check_output(result: Any, limits: ExpressionLimits, expression: str) -> None:
    if result is None or isinstance(result, bool | int | float):
        if (isinstance(result, float) and result != result) or result in (
            float("inf"),
            float("-inf"),
        ):
            raise ExpressionError("TF2006", "result is not a JSON number", expression=expression)
        return
    if isinstance(result, str):
        size = len(result)
    else:
        try:
            size = len(json.dumps(result, allow_nan=False, separators=(",", ":")))
        except (TypeError, ValueError) as err:
            raise ExpressionError(
                "TF2006",
                f"result is not JSON ({err}); functions cannot be stored",
                expression=expression,
            ) from None
    if size > limits.max_output_bytes:
        raise ExpressionError(
            "TF2005",
            f"result of {size} bytes exceeds the limit ({limits.max_output_bytes})",
            expression=expression,
        )


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

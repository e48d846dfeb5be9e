"""``{"$expr": "..."}`` envelopes anywhere inside step configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

EXPR_KEY = "$expr"


def is_expr(value: Any) -> bool:
    """True for an object whose only key is ``$expr`` with a string value."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and EXPR_KEY in value
        and isinstance(value[EXPR_KEY], str)
    )


def _escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def iter_expressions(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(json_pointer, expression)`` for every envelope inside ``value``."""
    if is_expr(value):
        yield path, value[EXPR_KEY]
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_expressions(item, f"{path}/{_escape(key)}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_expressions(item, f"{path}/{index}")


def resolve(value: Any, evaluate: Callable[[str, str], Any], path: str = "") -> Any:
    """Return ``value`` with every envelope replaced by ``evaluate(expression, pointer)``.

    Values without envelopes are returned as they are (not copied); a string that merely
    looks like an expression stays a string.
    """
    if is_expr(value):
        return evaluate(value[EXPR_KEY], path)
    if isinstance(value, dict):
        return {k: resolve(v, evaluate, f"{path}/{_escape(k)}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, evaluate, f"{path}/{i}") for i, v in enumerate(value)]
    return value

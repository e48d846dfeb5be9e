"""Values PostgreSQL cannot hold, made storable for a degraded projection write.

PostgreSQL rejects ``\\u0000`` in JSONB and text, lone UTF-16 surrogates, ``NaN`` and
infinities in JSON, strings longer than a ``varchar(n)`` and integers beyond the column's
range. A projection must never wedge a run on such a value: the writer retries the
transaction once with every row passed through :func:`storable_row`, which replaces an
offending JSON value by ``{"$unstorable": "<reason>"}`` (and cleans text columns), so the
rest of the record, its status above all, stays true.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import BigInteger, FromClause, Integer, SmallInteger, String
from sqlalchemy.dialects.postgresql import JSONB

MARKER = "$unstorable"
MAX_DEPTH = 100
"""JSON nested deeper than this is replaced in degraded writes."""
_INT_RANGE = {SmallInteger: 2**15, Integer: 2**31, BigInteger: 2**63}


def marker(reason: str) -> dict[str, str]:
    return {MARKER: reason}


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogate"
    return None


def storable_json(value: Any, depth: int = 0) -> Any:
    """``value`` with every part PostgreSQL's JSONB rejects replaced by a marker."""
    if depth > MAX_DEPTH:
        return marker("nested too deeply")
    if isinstance(value, str):
        problem = _text_problem(value)
        return marker(problem) if problem else value
    if isinstance(value, float) and not math.isfinite(value):
        return marker("non-finite number")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            problem = _text_problem(str(key))
            if problem:
                # The entry stays, under a cleaned key, its value replaced.
                out[_storable_text(str(key), None)] = marker(f"{problem} in the key")
            else:
                out[key] = storable_json(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [storable_json(v, depth + 1) for v in value]
    return value


def lossless_json(value: Any) -> Any:
    """A storable stand-in for ``value`` that :func:`restore_json` turns back into it
    (for recorded action outputs, which a re-execution must return unchanged)."""
    if storable_json(value) == value:
        return value
    return {MARKER: "stored as JSON text", "json": json.dumps(value)}


def restore_json(value: Any) -> Any:
    """Undo :func:`lossless_json`."""
    if (
        isinstance(value, dict)
        and value.keys() == {MARKER, "json"}
        and isinstance(value["json"], str)
    ):
        return json.loads(value["json"])
    return value


def _storable_text(value: str, length: int | None) -> str:
    if _text_problem(value):
        value = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return value[:length] if length else value


def _storable_column(column: Any, value: Any) -> Any:
    kind = column.type
    if value is None:
        return None
    if isinstance(kind, JSONB):
        return storable_json(value)
    if isinstance(kind, String) and isinstance(value, str):
        return _storable_text(value, kind.length)
    for int_type, bound in _INT_RANGE.items():
        if type(kind) is int_type and isinstance(value, int) and not -bound <= value < bound:
            return None if column.nullable else (bound - 1 if value > 0 else -bound)
    return value


def storable_row(table: FromClause, row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` (column name → value) that ``table`` can hold."""
    columns = table.c
    return {
        name: _storable_column(columns[name], value) if name in columns else value
        for name, value in row.items()
    }

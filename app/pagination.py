"""Opaque keyset cursors and page-size limits."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError

from tempoflow.errors import ErrorItem, Unprocessable

_BIGINT = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]
_TEXT = Annotated[str, Field(strict=True, pattern=r"^[^\x00]*$", max_length=1000)]
_ITEMS: dict[type, Any] = {int: _BIGINT, str: _TEXT, datetime: AwareDatetime}
_SCALAR: Any = _TEXT | _BIGINT


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


@cache
def _adapter(types: tuple[type | None, ...]) -> TypeAdapter[Any]:
    items = tuple(_ITEMS[t] if t is not None else _SCALAR for t in types)
    return TypeAdapter(tuple[items])  # type: ignore[valid-type]


def decode_cursor(cursor: str | None, shape: int | tuple[type, ...]) -> list[Any] | None:
    """The values of a cursor made by :func:`encode_cursor`, typed by ``shape``.

    ``shape`` is the types of the values (``int``, ``str``, ``datetime``) or just their
    number (each then a string or a 64-bit integer). Anything else is 422
    ``cursor_invalid``: a forged cursor never reaches the database.
    """
    if cursor is None:
        return None
    types: tuple[type | None, ...] = shape if isinstance(shape, tuple) else (None,) * shape
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return list(_adapter(types).validate_python(values, strict=False))
    except (ValueError, binascii.Error, ValidationError, RecursionError):
        raise Unprocessable(
            "the cursor is not valid",
            code="cursor_invalid",
            errors=[ErrorItem(path="query:/cursor", code="cursor_invalid", message="bad cursor")],
            hint="pass back the nextCursor value of the previous page unchanged",
        ) from None


Row = TypeVar("Row")


async def keyed_page(
    fetch: Callable[[int, str | None], Awaitable[list[Row]]],
    key: Callable[[Row], str],
    *,
    limit: int | None,
    cursor: str | None,
    default_size: int,
    max_size: int,
) -> tuple[list[Row], str | None]:
    """One page of rows ordered by a unique string ``key``: ``fetch(n, after)`` returns up
    to ``n`` rows after that key; one more than the page tells whether a next page exists."""
    size = min(limit or default_size, max_size)
    after = decode_cursor(cursor, (str,))
    rows = await fetch(size + 1, after[0] if after else None)
    return rows[:size], encode_cursor([key(rows[size - 1])]) if len(rows) > size else None

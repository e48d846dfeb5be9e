"""Keyset paging pieces shared by the list queries (the cursor itself is the API's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, literal, tuple_
from sqlalchemy.orm import InstrumentedAttribute


def older_than(
    columns: Sequence[InstrumentedAttribute[Any]], values: Sequence[Any]
) -> ColumnElement[bool]:
    """Rows whose ``columns`` sort before ``values`` (the previous page's last row) in a
    newest-first listing ordered by ``columns`` descending."""
    return tuple_(*columns) < tuple_(*(literal(v) for v in values))

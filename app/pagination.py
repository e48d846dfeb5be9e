"""Opaque keyset cursors and page-size limits."""

from __future__ import annotations

import base64
import json
from typing import Any

from tempoflow.errors import Unprocessable


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def decode_cursor(cursor: str | None, size: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != size:
        raise Unprocessable(
            "the cursor is not valid",
            code="cursor_invalid",
            errors=[{"path": "query:/cursor", "code": "cursor_invalid", "message": "bad cursor"}],
            hint="pass back the nextCursor value of the previous page unchanged",
        )
    return values

"""Correlation keys and the routing lock: shared by the API (events) and the worker (waits).

Pure functions, imported by workflow code.
"""

from __future__ import annotations

import hashlib
from typing import Any

MAX_KEY_LENGTH = 256


class CorrelationError(ValueError):
    """A value that cannot be a correlation key."""


def normalize_key(value: Any) -> str | None:
    """The canonical string of a key value: strings as they are, integral numbers without
    a fraction (``42`` and ``42.0`` are the same key); ``None`` when there is no value.

    Raises:
        CorrelationError: for objects, arrays, booleans, empty or over-long strings.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CorrelationError(
            f"a correlation key must be a string or a number, not {type(value).__name__}"
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    if not text:
        raise CorrelationError("a correlation key cannot be empty")
    if "\x00" in text:
        raise CorrelationError("a correlation key cannot contain the NUL character")
    if len(text) > MAX_KEY_LENGTH:
        raise CorrelationError(f"a correlation key is at most {MAX_KEY_LENGTH} characters")
    return text


def lock_key(tenant: str, event_name: str, key: str) -> int:
    """The PostgreSQL advisory lock serializing wait registration and event routing of one
    (tenant, event name, correlation key); a signed 64-bit integer."""
    raw = f"{tenant}\x1f{event_name}\x1f{key}".encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)

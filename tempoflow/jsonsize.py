"""The size limits count JSON bytes one way everywhere."""

from __future__ import annotations

import json
from typing import Any


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (no spaces; non-ASCII escaped)."""
    return len(json.dumps(value, separators=(",", ":")).encode())

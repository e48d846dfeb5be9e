"""JSON pointers (RFC 6901): escaping, building from a path, resolving."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def escape(token: str | int) -> str:
    """One JSON pointer reference token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def join(path: Iterable[str | int]) -> str:
    """The pointer of a path of keys and indexes (``""`` for the document itself)."""
    return "".join(f"/{escape(p)}" for p in path)


def resolve(document: Any, pointer: str) -> Any:
    """The value at ``pointer``, or ``None`` when it is absent."""
    node = document
    for raw in pointer.lstrip("/").split("/") if pointer != "/" else [""]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
        if node is None:
            return None
    return node

"""One check at the edge for what no store can hold: runs before routing, for every route.

PostgreSQL refuses NUL characters in text and JSONB, and JSON nested deeper than a few
hundred levels parses but cannot be serialized again (pydantic's depth limit), so it
would be accepted and then fail every later read or Temporal call. This middleware
refuses both (and non-finite numbers, which JSONB cannot hold) in JSON bodies, query
strings and paths with one 422, before authentication or parsing by the routes. Empty
query parameters (``cursor=``) are dropped: they mean "absent".
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem
from tempoflow import jsonpointer
from tempoflow.errors import ErrorItem

# JSON string escapes of U+0000 or of a surrogate (an odd number of backslashes before
# ``u0000`` / ``uD800``-``uDFFF``); pairs are fine, lone surrogates cannot be encoded.
_SUSPECT_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u(?:0000|[dD][89a-fA-F])")
# Literals that may parse to a non-finite float: NaN, Infinity, huge exponents or digits.
_SUSPECT_NUMBER = re.compile(rb"NaN|Infinity|[eE]\+?0*[1-9][0-9]{2}|[0-9]{300}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _NonFinite(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


def _constant(text: str) -> float:
    raise _NonFinite(text)


def find_offence(value: Any, max_depth: int) -> tuple[str, str] | None:
    """The first (code, JSON pointer) that makes ``value`` unstorable, or None.

    Depth counts containers: ``{}`` and ``[1]`` are 1 deep, ``{"a": [1]}`` is 2.
    """
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "nul_character", jsonpointer.join(path)
            if _SURROGATE.search(item):
                return "unpaired_surrogate", jsonpointer.join(path)
        elif isinstance(item, dict | list):
            if len(path) >= max_depth:
                return "json_too_deep", jsonpointer.join(path)
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and ("\x00" in key or _SURROGATE.search(key)):
                    code = "nul_character" if "\x00" in key else "unpaired_surrogate"
                    return code, jsonpointer.join([*path, key])
                stack.append((child, [*path, key]))
    return None


def check_json(body: bytes, max_depth: int) -> tuple[str, str] | None:
    """Check a JSON body; None when it is fine or not JSON at all (the route says so)."""
    opens = body.count(b"[") + body.count(b"{")
    if opens <= max_depth and not _SUSPECT_ESCAPE.search(body) and not _SUSPECT_NUMBER.search(body):
        return None  # cannot be too deep, no NUL, no huge number: skip the parse
    try:
        value = json.loads(body, parse_float=_finite, parse_constant=_constant)
    except RecursionError:
        return "json_too_deep", ""
    except _NonFinite:
        return "number_not_finite", ""
    except ValueError:
        return None  # malformed JSON: the route answers 422 json_invalid
    return find_offence(value, max_depth)


def check_params(scope: Scope) -> tuple[str, str] | None:
    """NUL in the path or the query string (decoded), as (code, where)."""
    if "\x00" in scope.get("path", ""):
        return "nul_character", "path"
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if "\x00" in key or "\x00" in value:
            return "nul_character", f"query:/{key.replace(chr(0), '')}"
    return None


def _drop_empty_query(scope: Scope) -> Scope:
    """Drop ``name=`` and bare ``name`` pairs; the rest of the query stays byte for byte."""
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return scope
    parts = raw.split(b"&")
    kept = [p for p in parts if p.partition(b"=")[2]]
    if len(kept) == len(parts):
        return scope
    return {**scope, "query_string": b"&".join(kept)}


_MESSAGES = {
    "nul_character": "NUL characters (U+0000) cannot be stored",
    "unpaired_surrogate": "strings must be valid Unicode (no unpaired surrogates)",
    "json_too_deep": "JSON is nested too deeply",
    "number_not_finite": "numbers must be finite (no NaN or Infinity)",
}


class InputGuard:
    """Refuse NUL characters, over-deep JSON and non-finite numbers anywhere in a request."""

    def __init__(self, app: ASGIApp, max_depth: int) -> None:
        self.app = app
        self.max_depth = max_depth

    def _reject(self, scope: Scope, code: str, where: str) -> ASGIApp:
        detail = _MESSAGES[code]
        if code == "json_too_deep":
            detail += f": at most {self.max_depth} levels of objects and arrays"
        return problem(
            Request(scope),
            422,
            code,
            "Unprocessable content",
            detail,
            errors=[ErrorItem(path=where, code=code, message=detail)],
            hint="see the limits in the API documentation",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = check_params(scope)
        if found is not None:
            await self._reject(scope, *found)(scope, receive, send)
            return
        scope = _drop_empty_query(scope)
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nothing to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        found = check_json(body, self.max_depth) if body else None
        if found is not None:
            await self._reject(scope, *found)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

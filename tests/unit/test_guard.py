"""The edge check on raw request bodies and query strings (no server needed)."""

from __future__ import annotations

import json

import pytest

from app.guard import _drop_empty_query, check_json, check_params


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (b'{"a": "x"}', None),
        (b"not json", None),  # the route answers json_invalid
        (b'{"a": "x\\u0000"}', ("nul_character", "/a")),
        (b'{"a": [{"k\\u0000": 1}]}', ("nul_character", "/a/0/k\x00")),
        (b'{"a": "C:\\\\u0000"}', None),  # an escaped backslash, then text
        (b'{"a": "\\\\\\u0000"}', ("nul_character", "/a")),
        (b'{"a/b": "\\udc00"}', ("unpaired_surrogate", "/a~1b")),
        (b'{"a": "\\ud83d\\ude00"}', None),  # a pair is one character
        (b'{"n": NaN}', ("number_not_finite", "")),
        (b'{"n": 1e309}', ("number_not_finite", "")),
        (b'{"n": 1e308, "s": "NaN"}', None),
        (nested(64), None),
        (nested(65), ("json_too_deep", "/0" * 64)),
        (nested(100_000), ("json_too_deep", "")),
    ],
)
def test_check_json(body: bytes, found: tuple[str, str] | None) -> None:
    assert check_json(body, 64) == found


def test_depth_counts_containers_not_scalars() -> None:
    body = json.dumps({"a": {"b": [1, "x"]}}).encode()
    assert check_json(body, 3) is None
    assert check_json(body, 2) == ("json_too_deep", "/a/b")


def test_params() -> None:
    assert check_params({"path": "/v1/runs/a\x00", "query_string": b""}) == (
        "nul_character",
        "path",
    )
    assert check_params({"path": "/v1/runs", "query_string": b"x=1&definition=a%00"}) == (
        "nul_character",
        "query:/definition",
    )
    assert check_params({"path": "/v1/runs", "query_string": b"x=%C3%A9"}) is None


def test_empty_query_parameters_are_dropped() -> None:
    def drop(raw: bytes) -> bytes:
        return bytes(_drop_empty_query({"query_string": raw})["query_string"])

    assert drop(b"cursor=&limit=5") == b"limit=5"
    assert drop(b"cursor&x=%C3%A9") == b"x=%C3%A9"
    assert drop(b"a=b=&c=") == b"a=b="
    assert drop(b"a=1") == b"a=1"

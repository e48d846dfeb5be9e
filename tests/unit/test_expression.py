"""The expression seam: evaluation, errors with positions, determinism, resolution."""

from __future__ import annotations

import datetime as dt

import pytest

from expression import EvalContext, ExpressionError, evaluate, is_expr, iter_expressions, resolve
from expression.engine import truthy

ENVELOPE = {
    "payload": {"items": [{"sku": "a", "price": 2, "qty": 3}, {"sku": "b", "price": 5, "qty": 1}]},
    "vars": {"name": "Ada"},
    "meta": {"runId": "r1"},
}
FIXED = EvalContext(now=lambda: dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC), random=lambda: 0.25)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("payload.items[0].sku", "a"),
        ("$sum(payload.items.(price * qty))", 11),
        ("$count(payload.items[price > 2])", 1),
        ("'Hello ' & vars.name", "Hello Ada"),
        ("{'id': meta.runId, 'n': $count(payload.items)}", {"id": "r1", "n": 2}),
        ("vars.missing", None),
        ("payload.items.sku", ["a", "b"]),
        ("$map([1, 2], function($x) { $x * 10 })", [10, 20]),
    ],
)
def test_evaluates_against_envelope(expr: str, expected: object) -> None:
    assert evaluate(expr, ENVELOPE) == expected


def test_clock_and_random_come_from_the_caller() -> None:
    assert evaluate("$now()", {}, FIXED) == "2026-05-01T12:00:00.000Z"
    assert evaluate("$millis()", {}, FIXED) == 1777636800000
    assert evaluate("$random()", {}, FIXED) == 0.25
    later = EvalContext(now=lambda: dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert evaluate("$now()", {}, later) == "2027-01-01T00:00:00.000Z"


def test_syntax_error_has_code_and_position() -> None:
    with pytest.raises(ExpressionError) as err:
        evaluate("payload.(", ENVELOPE)
    assert err.value.code == "S0203"
    assert err.value.position == 9
    assert err.value.expression == "payload.("


def test_python_errors_become_expression_errors() -> None:
    # jsonata-python raises a bare ValueError here; in a workflow that would retry forever.
    with pytest.raises(ExpressionError) as err:
        evaluate("$number('abc')", {})
    assert err.value.code == "TF1000"


def test_runtime_error_code() -> None:
    with pytest.raises(ExpressionError) as err:
        evaluate("$undefinedFunction(1)", {})
    assert err.value.code == "T1006"


def test_with_path_keeps_everything_else() -> None:
    e = ExpressionError("X", "m", expression="e", position=3).with_path("/steps/0")
    assert e.to_dict() == {
        "code": "X",
        "message": "m",
        "position": 3,
        "expression": "e",
        "path": "/steps/0",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (None, False),
        (0, False),
        (0.5, True),
        ("", False),
        ("x", True),
        ([], False),
        ([0, ""], False),
        ([0, 1], True),
        ({}, False),
        ({"a": 1}, True),
    ],
)
def test_truthy_matches_jsonata_boolean(value: object, expected: bool) -> None:
    assert truthy(value) is expected
    assert evaluate("$boolean(v)", {"v": value}) is expected


def test_is_expr_only_for_exact_envelope() -> None:
    assert is_expr({"$expr": "a"})
    assert not is_expr({"$expr": "a", "other": 1})
    assert not is_expr({"$expr": 5})
    assert not is_expr("$expr")


def test_resolve_nested_mixture() -> None:
    value = {
        "a": {"$expr": "vars.name"},
        "b": [1, {"$expr": "$count(payload.items)"}, "x"],
        "c": {"d": {"$expr": "meta.runId"}, "e": '{"$expr": "not me"}'},
    }
    seen: list[str] = []

    def ev(expr: str, path: str) -> object:
        seen.append(path)
        return evaluate(expr, ENVELOPE)

    assert resolve(value, ev) == {
        "a": "Ada",
        "b": [1, 2, "x"],
        "c": {"d": "r1", "e": '{"$expr": "not me"}'},
    }
    assert seen == ["/a", "/b/1", "/c/d"]
    assert list(iter_expressions(value)) == [
        ("/a", "vars.name"),
        ("/b/1", "$count(payload.items)"),
        ("/c/d", "meta.runId"),
    ]


def test_pointer_escaping() -> None:
    assert list(iter_expressions({"a/b": {"~c": {"$expr": "1"}}})) == [("/a~1b/~0c", "1")]

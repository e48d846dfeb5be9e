"""``$coalesce`` and the ``==`` error (TF1003)."""

from __future__ import annotations

from typing import Any

import pytest

from expression import ExpressionError, compile_expression, evaluate
from tempoflow.definition import validate_definition
from tempoflow.definition.validation import expression_issues

DATA = {"payload": {"nothing": None, "empty": "", "zero": 0, "no": False, "arr": [], "obj": {}}}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("$coalesce(payload.missing, payload.nothing, 'x')", "x"),
        ("$coalesce(payload.empty, 'x')", ""),
        ("$coalesce(payload.zero, 1)", 0),
        ("$coalesce(payload.no, true)", False),
        ("$coalesce(payload.arr, 1)", []),
        ("$coalesce(payload.obj, 1)", {}),
        ("$coalesce(null, payload.missing, 2)", 2),
        ("$coalesce(payload.missing, payload.nothing)", None),
        ("{'a': $coalesce(payload.missing), 'b': 1}", {"b": 1}),  # undefined: key left out
        ("{'a': $coalesce(payload.missing, null)}", {"a": None}),  # null when one was null
        ("$coalesce('only')", "only"),
    ],
)
def test_coalesce(expr: str, expected: Any) -> None:
    assert evaluate(expr, DATA) == expected


def test_coalesce_needs_an_argument() -> None:
    with pytest.raises(ExpressionError):
        evaluate("$coalesce()", DATA)


@pytest.mark.parametrize(
    ("expr", "operator", "position", "fix"),
    [
        ("payload.status == 'paid'", "'=='", 15, "'='"),
        ("a==1 and b", "'=='", 1, "'='"),
        ("payload.a !== 1", "'!=='", 10, "'!='"),
        ("payload.a === 1", "'==='", 10, "'='"),
        ("(vars.x == 2) ? 'y' : 'n'", "'=='", 8, "'='"),
    ],
)
def test_double_equals_suggests_the_operator(
    expr: str, operator: str, position: int, fix: str
) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(expr)
    err = caught.value
    assert (err.code, err.position) == ("TF1003", position)
    assert operator in err.message and fix in err.message
    assert err.hint is not None and fix in err.hint
    assert expr[err.position : err.position + len(operator) - 2] == operator.strip("'")


def test_equals_signs_elsewhere_are_untouched() -> None:
    assert evaluate("payload.s = '=='", {"payload": {"s": "=="}}) is True
    with pytest.raises(ExpressionError) as caught:
        compile_expression("a = = b")
    assert caught.value.code == "S0211"


def test_publish_reports_double_equals_with_path_and_hint() -> None:
    body = {
        "steps": [
            {"id": "a", "type": "control.if", "condition": "payload.x == 1", "then": []},
            {"id": "b", "type": "state.set", "values": {"y": {"$expr": "vars.y != 2"}}},
        ]
    }
    [issue] = [i for i in validate_definition(body) if i.severity == "error"]
    assert (issue.path, issue.code, issue.position) == ("/steps/0/condition", "TF1003", 10)
    assert issue.hint and "'='" in issue.hint
    assert expression_issues("$coalesce(payload.a, 1)", "/x") == []

"""Property tests for the ``{"$expr": …}`` resolver on random nested JSON."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from expression import EXPR_KEY, is_expr, iter_expressions, resolve

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
keys = st.text(max_size=8) | st.sampled_from(["$expr", "a/b", "~0", ""])
# Objects that look like envelopes but are not: extra keys, non-string values.
near_misses = st.fixed_dictionaries({EXPR_KEY: st.text(), "x": scalars}) | st.fixed_dictionaries(
    {EXPR_KEY: st.integers()}
)
envelopes = st.builds(lambda text: {EXPR_KEY: text}, st.text(max_size=20))


def json_trees(
    leaves: st.SearchStrategy[Any], names: st.SearchStrategy[str] = keys
) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=4)
        ),
        max_leaves=25,
    )


def pointer_get(value: Any, pointer: str) -> Any:
    if pointer == "":
        return value
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        value = value[int(token)] if isinstance(value, list) else value[token]
    return value


# A generated {"$expr": "text"} object would be a real envelope: keep that key out here.
@given(json_trees(scalars | near_misses, keys.filter(lambda k: k != EXPR_KEY)))
def test_values_without_envelopes_come_back_unchanged(value: Any) -> None:
    def never(expr: str, path: str) -> Any:
        raise AssertionError(f"evaluated {expr!r} at {path}")

    assert list(iter_expressions(value)) == []
    assert resolve(value, never) == value


@given(json_trees(scalars | near_misses | envelopes))
def test_every_envelope_is_replaced_where_it_stands(value: Any) -> None:
    found = list(iter_expressions(value))
    resolved = resolve(value, lambda expr, path: ("evaluated", expr, path))
    for path, expr in found:
        assert is_expr(pointer_get(value, path))
        assert pointer_get(resolved, path) == ("evaluated", expr, path)
    # Nothing else changed: putting the envelopes back gives the original value.
    assert _unresolve(resolved) == value
    assert list(iter_expressions(resolved)) == []
    assert len(found) == _count(value)


def _unresolve(value: Any) -> Any:
    if isinstance(value, tuple) and value[:1] == ("evaluated",):
        return {EXPR_KEY: value[1]}
    if isinstance(value, dict):
        return {k: _unresolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unresolve(v) for v in value]
    return value


def _count(value: Any) -> int:
    if is_expr(value):
        return 1
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count(v) for v in value)
    return 0

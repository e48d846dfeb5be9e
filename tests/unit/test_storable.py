"""Degraded projection values and the transient/permanent split of database errors."""

from __future__ import annotations

import math

from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError

from projections.db import is_permanent, is_transient
from projections.models import ActionAttempt, StepRow
from projections.storable import MARKER, lossless_json, restore_json, storable_json, storable_row


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _error(sqlstate: str, cls: type[DBAPIError] = DBAPIError) -> DBAPIError:
    return cls("INSERT …", {}, _Orig(sqlstate))


def test_unstorable_json_values_become_markers() -> None:
    nested: object = 1
    for _ in range(150):
        nested = [nested]
    value = {
        "ok": ["a", 1, 2.5, None, True, 10**40],
        "nul": "a\x00b",
        "surrogate": "\ud800",
        "nan": math.nan,
        "inf": [math.inf],
        "bad\x00key": {"x": 1},
        "deep": nested,
    }
    out = storable_json(value)
    assert out["ok"] == value["ok"]
    assert out["nul"] == {MARKER: "NUL character"}
    assert out["surrogate"] == {MARKER: "lone surrogate"}
    assert out["nan"] == {MARKER: "non-finite number"} and out["inf"] == [out["nan"]]
    assert out["bad\ufffdkey"] == {MARKER: "NUL character in the key"}
    assert str(out["deep"]).count("[") < 110 and "nested too deeply" in str(out["deep"])


def test_storable_rows_clean_text_and_ranges() -> None:
    row = {"path": "/a\x00" + "x" * 2000, "attempt": 2**40, "output": {"t": "\x00"}, "seq": 1}
    out = storable_row(StepRow.__table__, row)
    assert out["path"].startswith("/a\ufffd") and len(out["path"]) == 1024
    assert out["attempt"] is None  # nullable integer out of range
    assert out["output"] == {"t": {MARKER: "NUL character"}}
    assert out["seq"] == 1
    attempt = storable_row(ActionAttempt.__table__, {"attempt": 2**40})
    assert attempt["attempt"] == 2**31 - 1  # not nullable: clamped


def test_recorded_outputs_survive_whole() -> None:
    for value in ({"t": "a\x00"}, [math.inf], "\ud800", {"plain": [1, "x"]}):
        stored = lossless_json(value)
        assert storable_json(stored) == stored
        back = restore_json(stored)
        assert back == value or (isinstance(value, list) and math.isinf(back[0]))
    assert lossless_json({"plain": 1}) == {"plain": 1}  # storable values stay as they are


def test_error_classes() -> None:
    assert is_transient(FileNotFoundError(2, "No such file or directory"))
    assert is_transient(ConnectionRefusedError())
    assert is_transient(_error("57P03"))  # the database system is shutting down
    assert is_transient(_error("53300"))  # too many connections
    assert is_transient(_error("40001"))  # serialization failure
    for state in ("22P05", "22021", "22001", "22000", "22P02"):
        assert is_permanent(_error(state)) and not is_transient(_error(state))
    assert is_permanent(_error("23505", IntegrityError))
    # A missing table (a migration not applied) is neither: retried until fixed.
    missing = _error("42P01", ProgrammingError)
    assert not is_permanent(missing) and not is_transient(missing)

"""The CLI prints every validation error with its code and position."""

from __future__ import annotations

import httpx
import pytest

from tempoflow.remote import _fail


def test_cli_prints_code_and_position_of_each_error(capsys: pytest.CaptureFixture[str]) -> None:
    body = {
        "detail": "the definition has 2 error(s)",
        "code": "definition_invalid",
        "errors": [
            {
                "path": "/steps/0/assign/x",
                "code": "S0203",
                "message": "Expected ')'",
                "position": 9,
            },
            {"path": "/steps/1/action", "code": "action.unknown", "message": "not registered"},
        ],
    }
    assert _fail(httpx.Response(422, json=body)) == 1
    err = capsys.readouterr().err
    assert "  /steps/0/assign/x: S0203 at 9: Expected ')'" in err
    assert "  /steps/1/action: action.unknown: not registered" in err

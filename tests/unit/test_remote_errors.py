"""The CLI prints every validation error with its code and position."""

from __future__ import annotations

import httpx

from launcher.remote import _problem


def test_cli_prints_code_and_position_of_each_error() -> None:
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
    err = _problem(httpx.Response(422, json=body))
    assert err.code == 1
    text = str(err)
    assert "HTTP 422 definition_invalid: the definition has 2 error(s)" in text
    assert "  /steps/0/assign/x: S0203 at 9: Expected ')'" in text
    assert "  /steps/1/action: action.unknown: not registered" in text

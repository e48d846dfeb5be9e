"""The CLI prints every validation error with its code and position; a server error is
exit 3, a refusal exit 1."""

from __future__ import annotations

import httpx

from launcher.cli_tail import sse_events
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


def test_a_server_error_is_exit_3_and_a_refusal_exit_1_with_the_problem() -> None:
    problem = {"code": "temporal_unavailable", "detail": "Temporal is not reachable"}
    err = _problem(httpx.Response(503, json=problem))
    assert err.code == 3 and err.status == 503
    assert err.document() == {
        "error": {
            "message": "HTTP 503 temporal_unavailable: Temporal is not reachable",
            "exitCode": 3,
            "status": 503,
            "problem": problem,
        }
    }
    assert _problem(httpx.Response(502, text="<html>bad gateway</html>")).code == 3
    assert _problem(httpx.Response(409, json={"code": "cancel_failed"})).code == 1


def test_sse_events_are_parsed_as_the_stream_sends_them() -> None:
    lines = [
        ": ping 2026-11-23",
        "event: run.status",
        'data: {"status": "RUNNING"}',
        "id: 7",
        "",
        "",
        "event: step.started",
        "data: {",
        'data: "path": "/steps/0"}',
        "",
        'data: {"status": "FAILED"}',
        "",
    ]
    assert list(sse_events(iter(lines))) == [
        {"event": "run.status", "data": '{"status": "RUNNING"}', "id": "7"},
        {"event": "step.started", "data": '{\n"path": "/steps/0"}', "id": None},
        {"event": "message", "data": '{"status": "FAILED"}', "id": None},
    ]

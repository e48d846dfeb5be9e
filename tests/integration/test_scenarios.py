"""``tempoflow test``: the scenario runner on the time-skipping test server (no database,
no API), run as a user runs it: the command, its exit code, its report and JUnit XML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def tempoflow_test(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launcher.cli", "test", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.timeout(300)
def test_the_examples_pass(tmp_path: Path) -> None:
    """CI runs the gallery's scenarios: every example has some, and all pass."""
    junit = tmp_path / "junit.xml"
    done = tempoflow_test("examples/", "--junit", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    definitions = {
        p.name.removesuffix(".json")
        for p in (REPO / "examples").glob("*.json")
        if not p.name.endswith((".scenario.json", "-input.json", "-event-type.json"))
    }
    with_scenarios = {
        p.name.removesuffix(".scenario.json") for p in (REPO / "examples").glob("*.scenario.json")
    }
    assert definitions == with_scenarios
    expected = sum(
        len(json.loads(p.read_text())["scenarios"])
        for p in (REPO / "examples").glob("*.scenario.json")
    )
    root = ET.parse(junit).getroot()
    assert root.get("tests") == str(expected) and root.get("failures") == "0"
    assert f"{expected} passed, 0 failed" in done.stdout


ORDER = {
    "steps": [
        {"id": "price", "type": "transform.assign", "assign": {"total": "payload.qty * 5"}},
        {
            "id": "guard",
            "type": "control.tryCatch",
            "try": [
                {
                    "id": "ack",
                    "type": "action.call",
                    "action": "core.noop",
                    "input": {"n": {"$expr": "vars.total"}},
                    "output": "ack",
                }
            ],
            "catch": [{"id": "caught", "type": "state.set", "values": {"caught": True}}],
        },
    ],
    "output": {"total": {"$expr": "vars.total"}, "ack": {"$expr": "vars.ack"}},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One invocation over several scenario files (one test server for all of them)."""
    root = tmp_path_factory.mktemp("scenarios")
    write(root / "order.json", ORDER)
    write(
        root / "order.scenario.json",
        {
            "scenarios": [
                {
                    "name": "wrong expectation",
                    "input": {"qty": 2},
                    "mocks": {"core.noop": {"output": {"ok": True}}},
                    "expect": {
                        "status": "SUCCEEDED",
                        "output": {"total": 11, "ack": {"ok": True}},
                        "steps": {"caught": {"status": "SUCCEEDED"}},
                    },
                },
                {
                    "name": "unmocked call",
                    "input": {"qty": 1},
                    "expect": {"status": "SUCCEEDED"},
                },
                {
                    "name": "passes",
                    "input": {"qty": 3},
                    "mocks": {"core.noop": [{"output": "first"}]},
                    "expect": {
                        "output": {"total": 15, "ack": "first"},
                        "calls": {"core.noop": [{"n": 15}]},
                        "steps": {"ack": {"status": "SUCCEEDED", "attempt": 1}, "caught": None},
                    },
                },
            ]
        },
    )
    write(
        root / "parent.json",
        {
            "steps": [
                {
                    "id": "child",
                    "type": "control.callWorkflow",
                    "definition": "order",
                    "input": {"qty": 4},
                    "output": "child",
                },
                {"id": "hold", "type": "delay", "duration": "P30D"},
            ],
            "output": {"child": {"$expr": "vars.child"}},
        },
    )
    write(
        root / "parent.scenario.json",
        {
            "scenarios": [
                {
                    "name": "child from the file beside it, a month passes at once",
                    "mocks": {"core.noop": {"output": "child-ack"}},
                    "expect": {
                        "status": "SUCCEEDED",
                        "output": {"child": {"total": 20, "ack": "child-ack"}},
                    },
                },
                {
                    "name": "cancelled while it holds",
                    "mocks": {"core.noop": {"output": None}},
                    "drive": [{"advance": "P1D"}, {"cancel": {}}],
                    "expect": {"status": "CANCELED", "steps": {"hold": {"status": "CANCELED"}}},
                },
            ]
        },
    )
    write(
        root / "logged.json",
        {
            "steps": [
                {
                    "id": "log",
                    "type": "action.call",
                    "action": "core.log",
                    "input": {"message": {"$expr": "payload.n"}},
                }
            ]
        },
    )
    write(
        root / "logged.scenario.json",
        {
            "scenarios": [
                {
                    "name": "the installed action's input model is applied",
                    "input": {"n": 5},
                    "mocks": {"core.log": {"output": None}},
                    "expect": {"status": "FAILED", "error": {"type": "ActionInputError"}},
                }
            ]
        },
    )
    write(
        root / "invalid.json",
        {"steps": [{"id": "log", "type": "action.call", "action": "core.log", "input": {}}]},
    )
    write(
        root / "invalid.scenario.json",
        {"scenarios": [{"name": "invalid definition", "expect": {"status": "SUCCEEDED"}}]},
    )
    write(root / "broken.scenario.json", {"definition": "order.json", "scenarios": [{"nmae": "x"}]})
    junit = root / "junit.xml"
    done = tempoflow_test(str(root), "--json", "--junit", str(junit))
    data = json.loads(done.stdout)
    data["returncode"] = done.returncode
    data["junit"] = ET.parse(junit).getroot()
    data["by_name"] = {s["name"]: s for s in data["scenarios"]}
    return data


def test_a_failing_expectation_exits_1_with_diffs_at_json_pointers(report: dict[str, Any]) -> None:
    assert report["returncode"] == 1
    wrong = report["by_name"]["wrong expectation"]
    assert not wrong["passed"]
    assert {"path": "/output/total", "expected": 11, "actual": 10} in wrong["differences"]
    assert any(d["path"] == "/steps/caught" for d in wrong["differences"])
    case = next(c for c in report["junit"].iter("testcase") if c.get("name") == "wrong expectation")
    failure = case.find("failure")
    assert failure is not None and "at /output/total: expected 11, got 10" in (failure.text or "")


def test_an_unmocked_call_fails_even_when_the_definition_catches_it(
    report: dict[str, Any],
) -> None:
    unmocked = report["by_name"]["unmocked call"]
    assert not unmocked["passed"] and unmocked["differences"] == []
    assert any(
        p.startswith("unmocked call: core.noop at /steps/1/try/0") for p in unmocked["problems"]
    ), unmocked


def test_passing_scenarios_children_time_and_cancel(report: dict[str, Any]) -> None:
    for name in (
        "passes",
        "child from the file beside it, a month passes at once",
        "cancelled while it holds",
    ):
        assert report["by_name"][name]["passed"], report["by_name"][name]
    assert report["by_name"]["the installed action's input model is applied"]["passed"]
    assert report["passed"] == 4 and report["failed"] == 3


def test_the_definition_is_checked_as_publishing_checks_it(report: dict[str, Any]) -> None:
    problems = report["by_name"]["invalid definition"]["problems"]
    assert problems[0] == "the definition invalid.json is invalid"
    assert any(p.startswith("/steps/0/input") for p in problems[1:]), problems


def test_an_unusable_scenario_file_is_reported_with_its_path(report: dict[str, Any]) -> None:
    errors = report["fileErrors"]
    assert any("broken.scenario.json" in e and "/scenarios/0/name" in e for e in errors), errors
    assert report["junit"].get("errors") == "1"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    done = tempoflow_test(str(tmp_path / "nothing-here"))
    assert done.returncode == 2
    assert "no scenario file" in done.stderr

"""The scenario file format, the diff and the reports of ``tempoflow test`` (no server)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from launcher.scenario.compare import MISSING, Difference, diff
from launcher.scenario.model import ScenarioFileError, discover, load
from launcher.scenario.report import junit, lines
from launcher.scenario.runner import Result


def test_diff_names_each_difference_by_json_pointer() -> None:
    expected = {"a": {"b": [1, 2], "c~/d": "x"}, "gone": 1}
    actual = {"a": {"b": [1, 3], "c~/d": "y", "extra": True}}
    found = {(d.path, d.expected, d.actual) for d in diff(expected, actual, "/output")}
    assert found == {
        ("/output/a/b/1", 2, 3),
        ("/output/a/c~0~1d", "x", "y"),
        ("/output/a/extra", MISSING, True),
        ("/output/gone", 1, MISSING),
    }


def test_diff_partial_numbers_booleans_and_matchers() -> None:
    assert diff({"x": 1}, {"x": 1.0, "y": 2}, "", partial=True) == []
    assert diff(True, 1, "/v") == [Difference("/v", True, 1)]
    assert diff({"id": "$any", "m": {"$contains": "404"}}, {"id": 7, "m": "HTTP 404"}, "") == []
    assert diff("$any", MISSING, "/p") == [Difference("/p", "$any", MISSING)]
    [short] = diff([1, 2], [1], "/l")
    assert "expected 2 item(s), got 1" in short.describe()
    [miss] = diff({"$contains": "a"}, 3, "/m")
    assert miss.describe() == 'at /m: expected a string containing "a", got 3'


def test_a_scenario_file_with_mistakes_lists_every_one(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps({"steps": []}))
    bad = tmp_path / "d.scenario.json"
    bad.write_text(
        json.dumps(
            {
                "scenarios": [
                    {"name": "x", "drive": [{"advance": "PT1H", "cancel": {}}]},
                    {"name": "y", "mocks": {"a.b": {"output": 1, "error": {}}}, "expct": {}},
                ]
            }
        )
    )
    with pytest.raises(ScenarioFileError) as caught:
        load(bad)
    text = " | ".join(caught.value.problems)
    assert "/scenarios/0/drive/0" in text and "exactly one of" in text
    assert "/scenarios/1/mocks/a.b" in text and "/scenarios/1/expct" in text


def test_discovery_by_directory_definition_or_file(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "a.scenario.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.scenario.json").write_text("{}")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.scenario.json").write_text("{}")
    found, missing = discover([str(tmp_path), str(tmp_path / "a.json"), str(tmp_path / "x")])
    assert found == [tmp_path / "a.scenario.json", tmp_path / "sub" / "b.scenario.json"]
    assert missing == [str(tmp_path / "x")]


def test_reports_show_failures_with_their_differences(tmp_path: Path) -> None:
    ok = Result(tmp_path / "a.scenario.json", "fine", seconds=0.5)
    bad = Result(
        tmp_path / "a.scenario.json",
        "broken",
        seconds=0.25,
        differences=[Difference("/status", "SUCCEEDED", "FAILED")],
        problems=["unmocked call: x.y at /steps/0"],
    )
    text = lines([ok, bad], tmp_path)
    assert text[0] == "PASS a.scenario.json :: fine (0.50s)"
    assert '    at /status: expected "SUCCEEDED", got "FAILED"' in text
    assert text[-1] == "1 passed, 1 failed"
    root = ET.fromstring(junit([ok, bad], tmp_path, ["b.scenario.json: not JSON"]))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    [failure] = root.iter("failure")
    assert (
        failure.text
        == 'unmocked call: x.y at /steps/0\nat /status: expected "SUCCEEDED", got "FAILED"'
    )


def test_a_yaml_scenario_file_is_the_same_document(tmp_path: Path) -> None:
    (tmp_path / "flow.json").write_text(json.dumps({"steps": []}))
    (tmp_path / "flow.scenario.yaml").write_text(
        "scenarios:\n"
        "  - name: dated\n"
        "    input: {day: 2026-01-01, n: 2}\n"
        "    drive:\n"
        "      - advance: PT1H\n"
        "    expect:\n"
        "      status: SUCCEEDED\n"
    )
    found, _ = discover([str(tmp_path / "flow.json")])
    assert found == [tmp_path / "flow.scenario.yaml"]
    loaded = load(found[0])
    [scenario] = loaded.spec.scenarios
    assert scenario.input == {"day": "2026-01-01", "n": 2}  # no YAML timestamps
    assert loaded.definition_path == tmp_path / "flow.json"
    (tmp_path / "bad.scenario.yml").write_text("scenarios: [\n")
    with pytest.raises(ScenarioFileError, match="not YAML"):
        load(tmp_path / "bad.scenario.yml")


def test_the_docs_examples_are_valid_scenarios() -> None:
    """Each JSON/YAML example in docs/testing.md is a scenario file or a scenario."""
    import re

    import yaml

    from launcher.scenario.model import Scenario, ScenarioFile

    text = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```(json|yaml)\n(.*?)```", text, re.DOTALL)
    checked = 0
    for kind, body in blocks:
        data = json.loads(body) if kind == "json" else yaml.safe_load(body)
        if "scenarios" in data:
            ScenarioFile.model_validate(data)
        else:
            Scenario.model_validate({"name": "example", **data})
        checked += 1
    assert checked >= 5

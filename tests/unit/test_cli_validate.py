"""``tempoflow validate``: offline checks of definition files and bundles, each finding with
its file and JSON pointer; exit 0 (valid), 1 (errors), 2 (usage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from launcher.cli import main

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "$schema": "../schemas/definition.json",
    "steps": [
        {"id": "a", "type": "state.set", "values": {"x": {"$expr": "$coalesce(payload.a, 1)"}}}
    ],
}
BAD = {
    "steps": [
        {"id": "a", "type": "transform.assign", "assign": {"x": "payload.a == 1"}},
        {"id": "b", "type": "action.call", "action": "nope.missing"},
        {"id": "c", "type": "state.sett"},
    ]
}


def _write(path: Path, body: Any) -> Path:
    path.write_text(json.dumps(body) if not isinstance(body, str) else body)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_errors_name_file_and_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path / "bad.json", BAD)
    good = _write(tmp_path / "good.json", GOOD)
    code, out, _ = _run(capsys, str(good), str(bad))
    assert code == 1
    assert f"{bad}:/steps/0/assign/x: error TF1003: JSONata has no '==' operator" in out
    assert f"{bad}:/steps/1/action: error action.unknown" in out
    assert f"{bad}:/steps/2: error schema.union_tag_invalid" in out
    assert str(good) + ":" not in out
    assert out.rstrip().endswith("FAILED: 2 file(s), 2 definition(s), 3 error(s), 0 warning(s)")


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path / "bad.json", BAD)
    code, out, _ = _run(capsys, "--json", str(bad))
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    [file] = report["files"]
    assert file["file"] == str(bad) and file["kind"] == "definition"
    assert {(e["path"], e["code"]) for e in file["errors"]} == {
        ("/steps/0/assign/x", "TF1003"),
        ("/steps/1/action", "action.unknown"),
        ("/steps/2", "schema.union_tag_invalid"),
    }
    assert next(e for e in file["errors"] if e["code"] == "TF1003")["position"] == 10
    assert all(e["file"] == str(bad) and e["hint"] for e in file["errors"])


def test_valid_files_and_the_repository_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path / "good.json", GOOD)
    code, out, _ = _run(capsys, str(good), str(REPO / "examples"))
    assert code == 0, out
    assert out.startswith("OK: ") and "0 error(s)" in out


def test_actions_are_the_installed_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # email.send is built in; its input schema is checked like at publish time.
    body = {
        "steps": [{"id": "m", "type": "action.call", "action": "email.send", "input": {"to": 3}}]
    }
    path = _write(tmp_path / "mail.json", body)
    code, out, _ = _run(capsys, "--json", str(path))
    assert code == 1
    codes = {e["code"] for e in json.loads(out)["files"][0]["errors"]}
    assert codes and all(c.startswith("action.input.") for c in codes)
    code, out, _ = _run(capsys, "--no-actions", str(_write(tmp_path / "x.json", BAD)))
    assert code == 1 and "action.unknown" not in out


def test_bundles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = {
        "format": "tempoflow.bundle",
        "formatVersion": 1,
        "schemas": {"payload.Order.v1": {"type": "object"}},
        "workflows": [
            {
                "key": "orders",
                "draft": {
                    "inputSchema": {"$ref": "schema:payload.Order.v1"},
                    "steps": GOOD["steps"],
                },
                "versions": [
                    {"version": 1, "definition": {"steps": [{"id": "a", "type": "delay"}]}},
                    {"version": 2, "definition": {"inputSchema": {"$ref": "schema:x.v1"}, **BAD}},
                ],
            }
        ],
    }
    path = _write(tmp_path / "bundle.json", bundle)
    code, out, _ = _run(capsys, "--json", str(path))
    assert code == 1
    [file] = json.loads(out)["files"]
    assert file["kind"] == "bundle" and file["definitions"] == 3
    errors = {(e["path"], e["code"]) for e in file["errors"]}
    assert ("/workflows/0/versions/0/definition/steps/0", "schema.value_error") in errors
    assert ("/workflows/0/versions/1/definition/steps/0/assign/x", "TF1003") in errors
    assert not any(p.startswith("/workflows/0/draft") for p, _ in errors)
    # The bundle's named schema is pinned; one it does not carry is only a warning offline.
    assert [(w["path"], w["code"]) for w in file["warnings"]] == [
        ("/workflows/0/versions/1/definition/inputSchema/$ref", "schema_ref.unchecked")
    ]


def test_strict_fails_on_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"steps": [{"id": "a", "type": "transform.assign", "assign": {"x": "vars.never"}}]}
    path = _write(tmp_path / "warn.json", body)
    code, out, _ = _run(capsys, str(path))
    assert code == 0 and "warning expression.unassigned_var" in out
    assert _run(capsys, "--strict", str(path))[0] == 1


def test_unreadable_and_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = _write(tmp_path / "broken.json", '{"steps": [')
    code, out, _ = _run(capsys, str(broken))
    assert code == 1 and f"{broken}:/: error file.invalid_json" in out
    code, _, err = _run(capsys, str(tmp_path / "missing.json"))
    assert code == 2 and "no such file" in err
    assert _run(capsys)[0] == 2
    # A directory is searched for definitions and bundles; other JSON there is skipped.
    folder = tmp_path / "defs"
    folder.mkdir()
    _write(folder / "input.json", {"orderId": "1"})
    _write(folder / "notes.json", "not json")
    _write(folder / "flow.json", GOOD)
    code, out, _ = _run(capsys, str(folder))
    assert code == 0 and "1 file(s), 1 definition(s)" in out


def test_command_line_exit_codes(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.json", BAD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "validate", "--json", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["files"][0]["errors"]

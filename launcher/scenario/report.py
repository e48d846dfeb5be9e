"""Scenario results for people (lines with diffs), for programs (``--json``) and for CI
(JUnit XML)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from launcher.scenario.runner import Result


def _where(result: Result, root: Path) -> str:
    try:
        return str(result.file.resolve().relative_to(root))
    except ValueError:
        return str(result.file)


def lines(results: list[Result], root: Path) -> list[str]:
    out: list[str] = []
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        out.append(f"{mark} {_where(r, root)} :: {r.name} ({r.seconds:.2f}s)")
        out += [f"    {p}" for p in r.problems]
        out += [f"    {d.describe()}" for d in r.differences]
    failed = sum(1 for r in results if not r.passed)
    out.append(f"{len(results) - failed} passed, {failed} failed")
    return out


def summary(results: list[Result], root: Path, file_errors: list[str]) -> dict[str, Any]:
    return {
        "passed": sum(1 for r in results if r.passed),
        "failed": sum(1 for r in results if not r.passed),
        "fileErrors": file_errors,
        "scenarios": [
            {
                "file": _where(r, root),
                "name": r.name,
                "passed": r.passed,
                "seconds": round(r.seconds, 3),
                "problems": r.problems,
                "differences": [d.to_dict() for d in r.differences],
            }
            for r in results
        ],
    }


def junit(results: list[Result], root: Path, file_errors: list[str]) -> bytes:
    """JUnit XML: a ``testsuite`` per scenario file, a ``testcase`` per scenario, a
    ``failure`` with the diff lines when it failed; unusable files as ``error`` cases."""
    suites = ET.Element("testsuites", name="tempoflow scenarios")
    by_file: dict[str, list[Result]] = {}
    for r in results:
        by_file.setdefault(_where(r, root), []).append(r)
    total_time = 0.0
    for name, group in by_file.items():
        seconds = sum(r.seconds for r in group)
        total_time += seconds
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=name,
            tests=str(len(group)),
            failures=str(sum(1 for r in group if not r.passed)),
            errors="0",
            time=f"{seconds:.3f}",
        )
        for r in group:
            case = ET.SubElement(
                suite, "testcase", classname=name, name=r.name, time=f"{r.seconds:.3f}"
            )
            if not r.passed:
                text = [*r.problems, *(d.describe() for d in r.differences)]
                failure = ET.SubElement(case, "failure", message=text[0][:500], type="scenario")
                failure.text = "\n".join(text)
    if file_errors:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name="scenario files",
            tests=str(len(file_errors)),
            failures="0",
            errors=str(len(file_errors)),
            time="0",
        )
        for error in file_errors:
            case = ET.SubElement(suite, "testcase", classname="scenario files", name=error[:200])
            ET.SubElement(case, "error", message=error[:500], type="file").text = error
    suites.set("tests", str(len(results) + len(file_errors)))
    suites.set("failures", str(sum(1 for r in results if not r.passed)))
    suites.set("errors", str(len(file_errors)))
    suites.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"

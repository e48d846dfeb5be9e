"""``tempoflow validate PATH...``: check definition files and bundles offline, with the
publish-time validator (:func:`tempoflow.definition.validate_definition`: the schema, the
expression contract, step ids, JSON Schemas, action inputs) and the actions installed
here (loaded as the worker loads them), without a server.

A file is a definition (a JSON object) or a bundle (``"format": "tempoflow.bundle"``;
each ``workflows[*].draft`` and ``workflows[*].versions[*].definition`` is checked, with
the bundle's named schemas pinned). A directory is searched for ``*.json`` files that are
definitions (they have ``steps``) or bundles; other JSON there (inputs, event types) is
skipped. Every finding carries its file and a JSON pointer into it.

Exit codes: 0 no errors (warnings are printed), 1 a file has errors (or warnings, with
``--strict``), 2 usage: a path that does not exist, an action plugin that fails to load.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUNDLE_FORMAT = "tempoflow.bundle"


@dataclass
class Finding:
    """One problem of a file: ``path`` is a JSON pointer into the file."""

    file: str
    path: str
    code: str
    message: str
    severity: str = "error"
    position: int | None = None
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class FileReport:
    file: str
    kind: str  # "definition", "bundle" or "unreadable"
    definitions: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


class UsageError(Exception):
    """Exit code 2."""


@dataclass
class Checker:
    """What a definition is checked against: the installed actions (``None``: not
    checked) and the definition size limit."""

    actions: list[str] | None = None
    input_schemas: Mapping[str, dict[str, Any] | None] | None = None
    max_bytes: int = 262_144

    def definition(
        self,
        body: Any,
        file: str,
        prefix: str = "",
        named: Mapping[str, dict[str, Any]] | None = None,
    ) -> list[Finding]:
        from tempoflow.definition import validate_definition
        from tempoflow.definition.named_refs import pin_definition
        from tempoflow.jsonsize import json_size

        size = json_size(body)
        if size > self.max_bytes:
            return [
                Finding(
                    file,
                    prefix,
                    "definition_too_large",
                    f"the definition is {size} bytes; the limit is {self.max_bytes}",
                    hint="split it into child workflows or raise TEMPOFLOW_MAX_DEFINITION_BYTES",
                )
            ]
        if named:
            body = pin_definition(body, named)
        issues = validate_definition(body, self.actions, self.input_schemas, schema_refs="warning")
        return [
            Finding(
                file,
                prefix + i.path,
                i.code,
                i.message,
                i.severity or "error",
                i.position,
                i.hint,
            )
            for i in issues
        ]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _items(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """The members of a list or an object, with their pointers."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield f"{path}/{index}", item
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}/{_escape(str(key))}", item


def _definition_in(value: Any, path: str, *, bare: bool) -> tuple[str, Any] | None:
    """A definition wrapped as ``{"definition": …}`` (or ``{"body": …}``), or given
    directly (``bare``: a draft may be the definition itself)."""
    if isinstance(value, dict) and "steps" not in value:
        for key in ("definition", "body"):
            if isinstance(value.get(key), dict):
                return f"{path}/{key}", value[key]
    return (path, value) if bare and value is not None else None


def bundle_schemas(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The named schemas a bundle carries: ``schemas`` (or ``namedSchemas``) as an object
    by ref, or a list of ``{ref, schema}``."""
    found: dict[str, dict[str, Any]] = {}
    for key in ("schemas", "namedSchemas"):
        for at, item in _items(bundle.get(key), ""):
            if isinstance(item, dict) and isinstance(item.get("ref"), str):
                if isinstance(item.get("schema"), dict):
                    found[item["ref"]] = item["schema"]
            elif isinstance(item, dict) and isinstance(bundle.get(key), dict):
                ref = at[1:].replace("~1", "/").replace("~0", "~")
                inner = item.get("schema")
                found[ref] = inner if isinstance(inner, dict) and "ref" in item else item
    return found


def check_bundle(bundle: dict[str, Any], file: str, checker: Checker) -> FileReport:
    report = FileReport(file, "bundle")
    version = bundle.get("formatVersion")
    if version is not None and version != 1:
        report.findings.append(
            Finding(
                file,
                "/formatVersion",
                "bundle.format_version",
                f"bundle format version {version!r}; this tempoflow reads version 1",
                "warning",
                hint="the definitions are checked as far as they can be read",
            )
        )
    named = bundle_schemas(bundle)
    workflows = bundle.get("workflows")
    if not isinstance(workflows, list | dict):
        report.findings.append(
            Finding(file, "/workflows", "bundle.no_workflows", "a bundle lists its workflows")
        )
        return report
    for at, workflow in _items(workflows, "/workflows"):
        if not isinstance(workflow, dict):
            continue
        found = [_definition_in(workflow.get("draft"), f"{at}/draft", bare=True)]
        found += [
            _definition_in(version, vat, bare=False)
            for vat, version in _items(workflow.get("versions"), f"{at}/versions")
        ]
        for item in found:
            if item is not None:
                path, body = item
                report.definitions += 1
                report.findings += checker.definition(body, file, path, named)
    return report


def check_file(path: Path, checker: Checker, *, explicit: bool = True) -> FileReport | None:
    """The report of one file (``None``: a JSON file in a searched directory that is
    neither a definition nor a bundle)."""
    name = str(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        return FileReport(
            name, "unreadable", findings=[Finding(name, "", "file.encoding", str(err))]
        )
    except json.JSONDecodeError as err:
        if not explicit:
            return None
        return FileReport(
            name,
            "unreadable",
            findings=[
                Finding(
                    name,
                    "",
                    "file.invalid_json",
                    f"not JSON: {err.msg} at line {err.lineno} column {err.colno}",
                    position=err.pos,
                )
            ],
        )
    if isinstance(document, dict) and document.get("format") == BUNDLE_FORMAT:
        return check_bundle(document, name, checker)
    if not explicit and not (isinstance(document, dict) and "steps" in document):
        return None
    report = FileReport(name, "definition", definitions=1)
    report.findings = checker.definition(document, name)
    return report


def files_of(paths: list[str]) -> Iterator[tuple[Path, bool]]:
    """``(file, named explicitly)``; a directory gives its ``*.json`` files, sorted."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*.json")):
                if found.is_file():
                    yield found, False
        elif path.is_file():
            yield path, True
        else:
            raise UsageError(f"{raw}: no such file or directory")


def _checker(args: argparse.Namespace) -> Checker:
    from tempoflow.settings import Settings

    try:
        settings = Settings()
    except ValueError as err:
        raise UsageError(f"invalid settings: {err}") from None
    checker = Checker(max_bytes=settings.max_definition_bytes)
    if not args.no_actions:
        from activities.plugins import PluginError, load_plugins

        try:
            registry = load_plugins(settings.action_modules, settings=settings).registry
        except PluginError as err:
            raise UsageError(f"{err} (--no-actions skips the action checks)") from None
        checker.actions = registry.names()
        checker.input_schemas = registry.input_schemas()
    return checker


def _human(reports: list[FileReport], strict: bool) -> str:
    lines = []
    for report in reports:
        for f in report.findings:
            at = f" (position {f.position})" if f.position is not None else ""
            lines.append(f"{f.file}:{f.path or '/'}: {f.severity} {f.code}: {f.message}{at}")
            if f.hint:
                lines.append(f"    hint: {f.hint}")
    errors = sum(len(r.errors) for r in reports)
    warnings = sum(len(r.warnings) for r in reports)
    definitions = sum(r.definitions for r in reports)
    failed = errors or (strict and warnings)
    lines.append(
        f"{'FAILED' if failed else 'OK'}: {len(reports)} file(s), {definitions} "
        f"definition(s), {errors} error(s), {warnings} warning(s)"
    )
    return "\n".join(lines)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        if not args.paths:
            raise UsageError("give one or more files or directories")
        targets = list(files_of(args.paths))
        checker = _checker(args)
    except UsageError as err:
        if args.json:
            print(json.dumps({"valid": False, "error": str(err)}))
        print(f"tempoflow validate: {err}", file=sys.stderr)
        return 2
    reports = [
        report
        for path, explicit in targets
        if (report := check_file(path, checker, explicit=explicit)) is not None
    ]
    failed = any(r.errors or (args.strict and r.warnings) for r in reports)
    if args.json:
        out = {
            "valid": not failed,
            "files": [
                {
                    "file": r.file,
                    "kind": r.kind,
                    "definitions": r.definitions,
                    "valid": not (r.errors or (args.strict and r.warnings)),
                    "errors": [f.to_json() for f in r.errors],
                    "warnings": [f.to_json() for f in r.warnings],
                }
                for r in reports
            ],
        }
        print(json.dumps(out, indent=2))
    else:
        print(_human(reports, args.strict))
    return 1 if failed else 0


def register(sub: Any) -> None:
    """Add ``validate`` to the ``tempoflow`` command."""
    parser = sub.add_parser(
        "validate",
        help="check definition files and bundles offline (schema, expressions, actions)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument(
        "--strict", action="store_true", help="warnings fail the check too (exit 1)"
    )
    parser.add_argument(
        "--no-actions",
        action="store_true",
        help="do not check action names and inputs (the actions are not installed here)",
    )
    parser.set_defaults(func=cmd_validate)

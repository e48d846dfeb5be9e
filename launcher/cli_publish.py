"""``tempoflow publish PATH...``: publish definition files from CI, idempotently.

Every file is validated first (``POST /v1/definitions/{key}/validate``); when any is
refused nothing is published and every error of every file is printed (exit 1). Then each
file's draft is stored (``PUT``) and published (``POST .../publish``). The API answers a
publish whose draft equals the latest version with that version and 200 (201 for a new
one), so publishing an unchanged file again adds no version and the command says
``unchanged``; a file whose draft already equals the stored draft is not written again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from launcher.cli_output import progress, table
from launcher.remote import (
    EXIT_FAILED,
    EXIT_OK,
    Api,
    CliError,
    api_options,
    emit,
    with_api,
)

SCENARIO = ".scenario.json"
"""Scenario files (``tempoflow test``) live beside definitions; publish leaves them out."""


def definition_files(paths: list[str]) -> list[Path]:
    """The files named, a directory standing for its ``*.json`` files (not recursive);
    scenario files (``*.scenario.json``) are left out, so ``definitions/*.json`` works."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(
                sorted(
                    p for p in path.glob("*.json") if p.is_file() and not p.name.endswith(SCENARIO)
                )
            )
        elif path.is_file():
            if not path.name.endswith(SCENARIO):
                found.append(path)
        else:
            raise CliError(f"no such file or directory: {name}")
    if not found:
        raise CliError(f"no *.json definition files in {', '.join(paths)}")
    return found


def _read(path: Path) -> tuple[Any, str | None]:
    """The file's JSON, or why it has none."""
    try:
        return json.loads(path.read_text()), None
    except OSError as err:
        return None, f"cannot read: {err.strerror or err}"
    except ValueError as err:
        return None, f"not JSON: {err}"


def _refusal(err: CliError) -> list[str]:
    """A refusal's lines (the problem's detail and each error with its path)."""
    if err.status is None or err.status >= 500:
        raise err  # the server or the connection failed: stop (exit 3)
    return str(err).splitlines()


def cmd_publish(args: argparse.Namespace, api: Api) -> int:
    files = definition_files(args.paths)
    if args.key and len(files) > 1:
        raise CliError("--key names one definition: give one file with it")
    keys = [args.key or f.stem for f in files]
    seen: dict[str, Path] = {}
    for key, file in zip(keys, files, strict=True):
        if key in seen:
            raise CliError(f"{seen[key]} and {file} both publish the key {key!r}")
        seen[key] = file

    results: list[dict[str, Any]] = []
    definitions: list[Any] = []
    with progress("validating", len(files), enabled=not args.json) as bar:
        for key, file in zip(keys, files, strict=True):
            definition, unreadable = _read(file)
            result: dict[str, Any] = {"file": str(file), "key": key}
            if unreadable is not None:
                result.update(result="invalid", errors=[unreadable])
            else:
                try:
                    report = api.call(
                        "POST",
                        f"/v1/definitions/{quote(key, safe='')}/validate",
                        ok=(200,),
                        json={"definition": definition},
                    )
                    result.update(result="valid", warnings=report.get("warnings") or [])
                except CliError as err:
                    result.update(result="invalid", errors=_refusal(err), problem=err.problem)
            results.append(result)
            definitions.append(definition)
            bar.advance(key)

    invalid = [r for r in results if r["result"] == "invalid"]
    if not invalid and not args.validate_only:
        with progress("publishing", len(files), enabled=not args.json) as bar:
            for result, definition in zip(results, definitions, strict=True):
                _publish(api, args, result, definition)
                bar.advance(result["key"])

    document = {
        "published": [] if args.validate_only else [r for r in results if "version" in r],
        "results": results,
        "summary": _summary(results),
        "valid": not invalid,
    }
    emit(args, document, lambda: _human(results))
    for r in invalid:
        for line in r["errors"]:
            print(f"tempoflow: {r['file']}: {line}", file=sys.stderr)
    return EXIT_FAILED if invalid else EXIT_OK


def _publish(api: Api, args: argparse.Namespace, result: dict[str, Any], definition: Any) -> None:
    key = result["key"]
    path = f"/v1/definitions/{quote(key, safe='')}"
    existing = api.send("GET", path, ok=(200, 404))
    stored = existing.json() if existing.status_code == 200 else None
    name = args.name or (stored["name"] if stored else key)
    if stored is None or stored["definition"] != definition or stored["name"] != name:
        api.call("PUT", path, json={"name": name, "definition": definition})
    published = api.send("POST", f"{path}/publish")
    version = published.json()["version"]
    # 201: a new version; 200: the draft equals the latest version (same number).
    if published.status_code == 200:
        outcome = "unchanged"
    elif stored is None or stored.get("latestVersion") is None:
        outcome = "created"
    else:
        outcome = "new_version"
    warnings = published.json().get("warnings") or result.get("warnings") or []
    result.update(result=outcome, version=version, created=outcome != "unchanged")
    result["warnings"] = warnings


def _summary(results: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    return counts


def _said(result: dict[str, Any]) -> str:
    what = result["result"]
    if what == "created":
        return f"created (version {result['version']})"
    if what == "new_version":
        return f"new version {result['version']}"
    if what == "unchanged":
        return f"unchanged (version {result['version']})"
    return what


def _human(results: list[dict[str, Any]]) -> None:
    table(
        ["key", "file", "result", "warnings"],
        [(r["key"], r["file"], _said(r), len(r.get("warnings") or []) or "") for r in results],
    )
    for r in results:
        for warning in r.get("warnings") or []:
            at = warning.get("path") or "/"
            print(f"{r['file']}: warning {at}: {warning.get('message')}")


def register(sub: Any) -> None:
    publish = sub.add_parser(
        "publish",
        parents=[api_options()],
        help="validate and publish definition files (for CI; idempotent)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    publish.add_argument(
        "paths", nargs="+", metavar="PATH", help="definition files, or directories of *.json"
    )
    publish.add_argument("--key", help="definition key (one file only; default: the file name)")
    publish.add_argument("--name", help="display name (default: the stored one, else the key)")
    publish.add_argument(
        "--validate-only", action="store_true", help="validate every file, publish none"
    )
    publish.set_defaults(func=with_api(cmd_publish))

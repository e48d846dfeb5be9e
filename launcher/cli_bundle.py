"""``tempoflow bundle export|import``: move definitions with their versions, event types and
named schemas between environments (see docs/bundles.md).

Exit codes: 0 done, 1 the API refused the bundle (invalid, conflicting, too large: the
problem is printed), 2 usage (a file that cannot be read or written, no API key), 3 the
API could not be reached or failed (5xx).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from launcher.remote import EXIT_OK, EXIT_USAGE, Api, CliError, api_options, with_api

EXPORT = "/v1/definitions:export"
IMPORT = "/v1/definitions:import"
KINDS = ("workflows", "versions", "eventTypes", "schemas")


def cmd_export(args: argparse.Namespace, api: Api) -> int:
    params = [("key", k) for k in args.key or []]
    text = api.send("GET", EXPORT, (200,), params=params, timeout=args.timeout).text
    if not args.output:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as err:
        raise CliError(f"cannot write {args.output}: {err}", EXIT_USAGE) from None
    bundle = json.loads(text)
    counts = {
        "workflows": len(bundle["workflows"]),
        "versions": sum(len(w["versions"]) for w in bundle["workflows"]),
        "eventTypes": len(bundle["eventTypes"]),
        "schemas": len(bundle["schemas"]),
    }
    if args.json:
        print(json.dumps({"file": args.output, "bytes": len(text.encode()), **counts}, indent=2))
    else:
        print(
            f"exported {counts['workflows']} workflow(s) with {counts['versions']} version(s), "
            f"{counts['eventTypes']} event type(s), {counts['schemas']} named schema(s) "
            f"to {args.output}"
        )
    return EXIT_OK


def _label(kind: str, item: Any) -> str:
    if kind == "versions":
        moved = (
            ""
            if item["version"] == item["bundleVersion"]
            else f" (bundle v{item['bundleVersion']})"
        )
        return f"{item['key']} v{item['version']}{moved}"
    return str(item)


def summary_table(summary: dict[str, Any]) -> str:
    """The import summary as a table: one row per item, with what happened to it."""
    rows = [
        (what, kind, _label(kind, item))
        for what in ("created", "updated", "unchanged")
        for kind in KINDS
        for item in summary[what].get(kind, [])
    ]
    head = ("RESULT", "KIND", "ITEM")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in [head, *rows]]
    counts = ", ".join(
        f"{sum(len(v) for v in summary[what].values())} {what}"
        for what in ("created", "updated", "unchanged")
    )
    lines.append(f"{counts} ({'dry run: nothing written' if summary['dryRun'] else 'imported'})")
    for warning in summary.get("warnings") or []:
        lines.append(f"warning: {warning['path']}: {warning['code']}: {warning['message']}")
    return "\n".join(lines)


def cmd_import(args: argparse.Namespace, api: Api) -> int:
    try:
        raw = Path(args.file).read_bytes()
    except OSError as err:
        raise CliError(f"cannot read {args.file}: {err}", EXIT_USAGE) from None
    params = {"force": str(args.force).lower(), "dryRun": str(args.dry_run).lower()}
    response = api.send(
        "POST",
        IMPORT,
        (200, 201),
        params=params,
        content=raw,
        headers={"Content-Type": "application/json"},
        timeout=args.timeout,
    )
    summary = response.json()
    print(json.dumps(summary, indent=2) if args.json else summary_table(summary))
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``tempoflow bundle export|import``."""
    common = api_options()
    common.add_argument("--timeout", type=float, default=120, help="HTTP timeout (seconds)")
    bundle = sub.add_parser("bundle", help="export and import bundles of definitions")
    bundle_sub = bundle.add_subparsers(dest="bundle_command", required=True)
    export = bundle_sub.add_parser(
        "export",
        parents=[common],
        help="write the bundle of some (--key, repeated) or all definitions",
    )
    export.add_argument("--key", action="append", help="a definition key (repeat it)")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(func=with_api(cmd_export))
    imp = bundle_sub.add_parser(
        "import", parents=[common], help="import a bundle file in one transaction (admin key)"
    )
    imp.add_argument("file")
    imp.add_argument(
        "--force",
        action="store_true",
        help="replace drafts, metadata and triggers of existing keys; add new versions",
    )
    imp.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    imp.set_defaults(func=with_api(cmd_import))

"""``tempoflow runs list|show|start|cancel|retry``: runs from the command line.

``list`` reads ``GET /v1/runs`` (newest first; ``--status``, ``--definition``,
``--parent``; one page, or every page with ``--all``); ``show`` reads ``GET /v1/runs/{id}``
(and its steps with ``--steps``); ``cancel`` asks ``POST /v1/runs/{id}/cancel`` (or
``/terminate`` with ``--terminate``); ``retry`` asks ``POST /v1/runs/{id}/retry``;
``start`` is ``tempoflow run``. With ``--wait`` a command prints the run once it has
ended, and exits 1 unless it SUCCEEDED.
"""

from __future__ import annotations

import argparse
from typing import Any

from launcher.cli_output import fields, progress, table
from launcher.remote import (
    EXIT_OK,
    Api,
    CliError,
    add_run_arguments,
    api_options,
    emit,
    run_exit,
    run_path,
    wait_for_end,
    with_api,
)

STATUSES = (
    "SCHEDULED",
    "QUEUED",
    "RUNNING",
    "WAITING",
    "SUCCEEDED",
    "FAILED",
    "CANCELED",
    "TERMINATED",
    "TIMED_OUT",
)
RUN_COLUMNS = ["id", "definition", "version", "status", "started", "closed"]


def _row(run: dict[str, Any]) -> list[Any]:
    return [
        run["id"],
        run["definition"],
        run["version"],
        run["status"],
        run.get("startedAt"),
        run.get("closedAt"),
    ]


def cmd_list(args: argparse.Namespace, api: Api) -> int:
    params: dict[str, Any] = {
        k: v
        for k, v in {
            "status": args.status,
            "definition": args.definition,
            "parent": args.parent,
            "limit": args.limit,
            "cursor": args.cursor,
        }.items()
        if v is not None
    }
    items: list[dict[str, Any]] = []
    with progress("reading runs", None, enabled=args.all and not args.json) as bar:
        while True:
            page = api.call("GET", "/v1/runs", ok=(200,), params=params)
            items.extend(page["items"])
            for _ in page["items"]:
                bar.advance()
            cursor = page.get("nextCursor")
            if not (args.all and cursor):
                break
            params["cursor"] = cursor

    def human() -> None:
        table(RUN_COLUMNS, [_row(r) for r in items])
        if cursor:
            print(f"more runs: --cursor {cursor} (or --all)")

    emit(args, {"items": items, "nextCursor": cursor}, human)
    return EXIT_OK


def _error_text(error: dict[str, Any] | None) -> str | None:
    return f"{error.get('type', '')}: {error.get('message', '')}" if error else None


def _show_run(args: argparse.Namespace, run: dict[str, Any], steps: Any = None) -> int:
    def human() -> None:
        error = run.get("error")
        fields(
            [
                ("id", run["id"]),
                ("definition", f"{run['definition']} v{run['version']}"),
                ("status", run["status"]),
                ("started", run.get("startedAt")),
                ("closed", run.get("closedAt")),
                ("parent", run.get("parentRunId")),
                (
                    "error",
                    f"{error.get('type', '')}: {error.get('message', '')}" if error else None,
                ),
                ("temporal", run.get("temporalUiUrl")),
            ]
        )
        if steps:
            print()
            table(
                ["path", "type", "status", "attempt", "started", "finished"],
                [
                    (
                        s.get("path"),
                        s.get("type"),
                        s.get("status"),
                        s.get("attempt"),
                        s.get("startedAt"),
                        s.get("finishedAt"),
                    )
                    for s in steps
                ],
            )

    emit(args, {**run, "steps": steps} if steps is not None else run, human)
    return run_exit(run)


def cmd_show(args: argparse.Namespace, api: Api) -> int:
    run = api.call("GET", run_path(args.run_id), ok=(200,))
    if args.wait:
        run = wait_for_end(api, run, args.timeout)
    steps = None
    if args.steps:
        steps = api.call("GET", f"{run_path(args.run_id)}/steps", ok=(200,))["items"]
    return _show_run(args, run, steps)


def cmd_cancel(args: argparse.Namespace, api: Api) -> int:
    if args.reason and not args.terminate:
        raise CliError("--reason goes with --terminate (a cancel carries no reason)")
    if args.terminate:
        body = {"reason": args.reason} if args.reason else None
        answer = api.call("POST", f"{run_path(args.run_id)}/terminate", ok=(200,), json=body)
    else:
        answer = api.call("POST", f"{run_path(args.run_id)}/cancel", ok=(200, 202))
    if not args.wait:
        emit(args, answer, lambda: fields(list(answer.items())))
        return EXIT_OK
    run = wait_for_end(api, api.call("GET", run_path(args.run_id)), args.timeout)
    _show_run(args, run)
    # The cancel asked for was done: a run that ended CANCELED or TERMINATED is a success.
    return EXIT_OK if run["status"] in ("CANCELED", "TERMINATED") else run_exit(run)


def cmd_retry(args: argparse.Namespace, api: Api) -> int:
    answer = api.call(
        "POST",
        f"{run_path(args.run_id)}/retry",
        ok=(200,),
        params={"dryRun": "true"} if args.dry_run else None,
    )
    if args.dry_run or not args.wait:

        def human() -> None:
            resume = answer.get("resumeFrom") or {}
            fields([("id", answer["id"]), ("status", answer["status"]), *resume.items()])
            if args.dry_run:
                print("dry run: nothing was changed")

        emit(args, answer, human)
        return EXIT_OK
    run = wait_for_end(api, api.call("GET", run_path(args.run_id)), args.timeout)
    return _show_run(args, run)


def _wait_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--wait", action="store_true", help=f"{what}, print the run once it ends")
    parser.add_argument("--timeout", type=float, default=60, help="for --wait (seconds)")


def register(sub: Any) -> None:
    common = api_options()
    runs = sub.add_parser(
        "runs",
        help="list, show, start, cancel and retry runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)

    listing = runs_sub.add_parser("list", parents=[common], help="runs, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--definition", help="only runs of this definition key")
    listing.add_argument("--parent", help="only children of this run id")
    listing.add_argument("--limit", type=int, help="runs per page (the API caps it)")
    listing.add_argument("--cursor", help="the page after this one (a nextCursor)")
    listing.add_argument("--all", action="store_true", help="follow every page")
    listing.set_defaults(func=with_api(cmd_list))

    show = runs_sub.add_parser("show", parents=[common], help="one run (exit 1 if it failed)")
    show.add_argument("run_id")
    show.add_argument("--steps", action="store_true", help="with its steps")
    _wait_options(show, "wait until the run has ended")
    show.set_defaults(func=with_api(cmd_show))

    start = runs_sub.add_parser("start", parents=[common], help="start a run (as tempoflow run)")
    add_run_arguments(start)

    cancel = runs_sub.add_parser(
        "cancel", parents=[common], help="cancel a run (its finally blocks run)"
    )
    cancel.add_argument("run_id")
    cancel.add_argument(
        "--terminate", action="store_true", help="end it at once instead (admin; no finally)"
    )
    cancel.add_argument("--reason", help="with --terminate: recorded with the termination")
    _wait_options(cancel, "once asked")
    cancel.set_defaults(func=with_api(cmd_cancel))

    retry = runs_sub.add_parser(
        "retry", parents=[common], help="resume a FAILED or TERMINATED run from where it failed"
    )
    retry.add_argument("run_id")
    retry.add_argument("--dry-run", action="store_true", help="only say where it would resume")
    _wait_options(retry, "once resumed")
    retry.set_defaults(func=with_api(cmd_retry))

"""CLI commands that talk to a running API (start and show runs, show an event's routing)
and what every such command shares: the HTTP client, the options, errors and output.

Exit codes (the contract CI scripts rely on, ``docs/ci.md``): 0 done; 1 a check failed
(the API refused the request and its problem is printed, the run failed, a ``--wait``
timed out); 2 usage error (bad arguments, a missing setting or file); 3 the API could not
be reached or answered with a server error (5xx).

With ``--json`` a command prints exactly one JSON document on stdout, also when it fails
(``{"error": {...}}``); the human message still goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from tempoflow.settings import ClientSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVER = 3

OPEN_RUN = ("SCHEDULED", "QUEUED", "RUNNING", "WAITING")
UNSETTLED_DELIVERY = ("PENDING", "SIGNALED")


class CliError(Exception):
    """A failure for stderr, with the exit code.

    Attributes:
        code: the process exit code (``EXIT_*``).
        status: the HTTP status of a refusal (``None`` when the API was not reached).
        problem: the API's problem document, when it sent one.
    """

    def __init__(
        self,
        message: str,
        code: int = EXIT_USAGE,
        status: int | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.problem = problem
        self.extra: dict[str, Any] = {}  # more of the ``--json`` document (e.g. the run)

    def document(self) -> dict[str, Any]:
        """The failure as the ``--json`` document."""
        error: dict[str, Any] = {"message": str(self), "exitCode": self.code}
        if self.status is not None:
            error["status"] = self.status
        if self.problem is not None:
            error["problem"] = self.problem
        return {**self.extra, "error": error}


def _problem(response: httpx.Response) -> CliError:
    """The API's refusal in one or two lines (plus one per definition error)."""
    # A server error (5xx) is the server's failure, not a check that failed.
    exit_code = EXIT_SERVER if response.status_code >= 500 else EXIT_FAILED
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = " ".join(response.text.split())[:200] or response.reason_phrase
        return CliError(f"HTTP {response.status_code}: {text}", exit_code, response.status_code)
    lines = [
        f"HTTP {response.status_code} {body.get('code') or response.reason_phrase}: "
        f"{body.get('detail') or body.get('title') or ''}".rstrip(": ")
    ]
    for error in body.get("errors") or []:
        at = f" at {error['position']}" if error.get("position") is not None else ""
        code = f"{error['code']}{at}: " if error.get("code") else ""
        lines.append(f"  {error.get('path') or '/'}: {code}{error.get('message')}")
    if body.get("hint"):
        lines.append(f"  hint: {body['hint']}")
    elif response.status_code == 401:
        lines.append("  hint: check TEMPOFLOW_API_KEY (make dev prints one) or --api-key")
    return CliError("\n".join(lines), exit_code, response.status_code, body)


class Api:
    """A thin client: transport failures and refusals become :class:`CliError`."""

    def __init__(self, args: argparse.Namespace) -> None:
        try:
            settings = ClientSettings()
        except ValidationError as err:
            first = err.errors()[0]
            name = "TEMPOFLOW_" + "_".join(str(p) for p in first["loc"]).upper()
            raise CliError(f"invalid {name}: {first['msg']}") from None
        self.json = bool(getattr(args, "json", False))
        self.url = (args.api_url or settings.resolved_api_url).rstrip("/")
        key = args.api_key or settings.api_key
        if not key:
            raise CliError("set TEMPOFLOW_API_KEY or pass --api-key (make dev prints a key)")
        try:
            self.http = httpx.Client(
                base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            )
        except (httpx.InvalidURL, ValueError) as err:
            raise CliError(f"invalid API URL {self.url!r}: {err}") from None

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        """The answer's JSON body (``None`` when empty)."""
        response = self.send(method, path, ok, **kw)
        return response.json() if response.content else None

    def send(
        self, method: str, path: str, ok: tuple[int, ...] = (200, 201), **kw: Any
    ) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.TransportError as err:
            raise self.unreachable(err) from None
        return self.check(response, ok)

    def unreachable(self, err: httpx.TransportError) -> CliError:
        """The API could not be reached (exit 3), with what to check."""
        reason = str(err) or type(err).__name__
        return CliError(
            f"cannot reach the API at {self.url} ({reason}): is the stack running "
            "(make dev)? Check TEMPOFLOW_API_URL, or TEMPOFLOW_API_HOST/TEMPOFLOW_API_PORT",
            EXIT_SERVER,
        )

    def check(self, response: httpx.Response, ok: tuple[int, ...]) -> httpx.Response:
        """``response`` when its status is one of ``ok``, else its problem as an error."""
        if response.status_code not in ok:
            raise _problem(response)
        return response

    def poll(
        self, path: str, done: Callable[[Any], bool], timeout: float, first: Any = None
    ) -> tuple[Any, bool]:
        """GET ``path`` until ``done`` (or ``timeout``); 5xx answers are retried."""
        deadline = time.monotonic() + timeout
        current = first if first is not None else self.call("GET", path)
        while not done(current):
            if time.monotonic() >= deadline:
                return current, False
            time.sleep(0.2)
            try:
                current = self.call("GET", path)
            except CliError as err:
                if err.status is None or err.status < 500:
                    raise
        return current, True


def load_json(path: str) -> Any:
    """A JSON file named on the command line (unreadable or not JSON: a usage error)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise CliError(f"cannot read {path}: {err}") from None


def run_path(run_id: str) -> str:
    return f"/v1/runs/{quote(run_id, safe='')}"


def emit(args: argparse.Namespace, document: Any, human: Callable[[], None] | None = None) -> None:
    """Print the command's result: ``document`` as JSON with ``--json`` (or when the
    command has no human form), else ``human()``."""
    if human is None or getattr(args, "json", False):
        print(json.dumps(document, indent=2))
    else:
        human()


def run_exit(run: dict[str, Any]) -> int:
    """0 for a run still open or SUCCEEDED, 1 for one that ended otherwise."""
    return EXIT_OK if run["status"] in (*OPEN_RUN, "SUCCEEDED") else EXIT_FAILED


def _print_run(args: argparse.Namespace, run: dict[str, Any], quiet: bool = False) -> int:
    if quiet and not getattr(args, "json", False):
        print(run["id"])
    else:
        emit(args, run)
    return run_exit(run)


def wait_for_end(
    api: Api, run: dict[str, Any], timeout: float, quiet: bool = False
) -> dict[str, Any]:
    """The run once it has ended; after ``timeout`` a failed check carrying the run as it
    is now (printed, or in the ``--json`` document), for whoever follows up."""
    run, ended = api.poll(
        run_path(run["id"]), lambda r: r["status"] not in OPEN_RUN, timeout, first=run
    )
    if not ended:
        err = CliError(
            f"run {run['id']} is still {run['status']} after {timeout:g} s (raise --timeout)",
            EXIT_FAILED,
        )
        if api.json:
            err.extra["run"] = run
        else:
            print(run["id"] if quiet else json.dumps(run, indent=2))
        raise err
    return dict(run)


def cmd_run(args: argparse.Namespace, api: Api) -> int:
    """Start a run and print it: at once ``--settle 0``, once it ends with ``--wait``, else
    once it waits or ends (at most ``--settle`` seconds)."""
    body: dict[str, Any] = {
        "definition": args.key,
        "input": load_json(args.input) if args.input else {},
    }
    if args.version:
        body["version"] = args.version
    if args.idempotency_key:
        body["idempotencyKey"] = args.idempotency_key
    if args.start_at:
        body["startAt"] = args.start_at  # the API checks it (422 with /startAt)
    run = api.call("POST", "/v1/runs", json=body)
    if args.wait:
        run = wait_for_end(api, run, args.timeout, args.quiet)
    elif args.settle > 0:
        run, _ = api.poll(
            run_path(run["id"]), lambda r: r["status"] != "RUNNING", args.settle, first=run
        )
    return _print_run(args, run, args.quiet)


def cmd_status(args: argparse.Namespace, api: Api) -> int:
    """Print a run (``GET /v1/runs/{id}``); with ``--wait``, once it has ended."""
    run = api.call("GET", run_path(args.run_id))
    if args.wait:
        run = wait_for_end(api, run, args.timeout)
    return _print_run(args, run)


def _event_settled(event: dict[str, Any]) -> bool:
    return event["status"] != "PENDING" and all(
        d["status"] not in UNSETTLED_DELIVERY for d in event.get("deliveries") or []
    )


def wait_for_event(api: Api, event_id: str, timeout: float) -> dict[str, Any]:
    """The event once routed and each delivery has an outcome; a failed check after
    ``timeout``."""
    path = f"/v1/events/{quote(event_id, safe='')}"
    event, settled = api.poll(path, _event_settled, timeout)
    if not settled:
        pending = [d["status"] for d in event.get("deliveries") or []]
        why = f"; last error: {event['lastError']}" if event.get("lastError") else ""
        err = CliError(
            f"event {event_id} is still {event['status']} (deliveries: "
            f"{', '.join(pending) or 'none'}) after {timeout:g} s{why}",
            EXIT_FAILED,
        )
        if api.json:
            err.extra["event"] = event
        else:
            print(json.dumps(event, indent=2))
        raise err
    return dict(event)


def cmd_event_show(args: argparse.Namespace, api: Api) -> int:
    """Print an event with its routing; with ``--wait``, once routed and every delivery
    has an outcome."""
    if args.wait:
        event = wait_for_event(api, args.event_id, args.timeout)
    else:
        event = api.call("GET", f"/v1/events/{quote(args.event_id, safe='')}")
    emit(args, event)
    return EXIT_OK


def with_api(command: Callable[[argparse.Namespace, Api], int]) -> Callable[..., int]:
    """The command with an :class:`Api`; a :class:`CliError` becomes its message on
    stderr (and the ``--json`` error document on stdout) and its exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            with Api(args) as api:
                return command(args, api)
        except CliError as err:
            print(f"tempoflow: {err}", file=sys.stderr)
            if getattr(args, "json", False):
                print(json.dumps(err.document(), indent=2))
            return err.code

    return run


def api_options() -> argparse.ArgumentParser:
    """The options of every command that calls the API (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api-url",
        help="default: $TEMPOFLOW_API_URL, else http://$TEMPOFLOW_API_HOST:$TEMPOFLOW_API_PORT",
    )
    common.add_argument("--api-key", help="default: $TEMPOFLOW_API_KEY")
    common.add_argument(
        "--json",
        action="store_true",
        help='print one JSON document on stdout (also on failure: {"error": ...})',
    )
    return common


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """``tempoflow run`` and ``tempoflow runs start``."""
    run.add_argument("key")
    run.add_argument("--input", help="JSON file with the run input")
    run.add_argument("--version", type=int)
    run.add_argument("--idempotency-key")
    run.add_argument(
        "--start-at",
        metavar="TIME",
        help="start it later: RFC 3339 with an offset, e.g. 2026-12-01T09:00:00+01:00 "
        "(SCHEDULED until then)",
    )
    run.add_argument("--wait", action="store_true", help="print the run once it has ended")
    run.add_argument("--timeout", type=float, default=60, help="for --wait (seconds)")
    run.add_argument(
        "--settle",
        type=float,
        default=5,
        help="without --wait: print once the run waits or ends, at most after this many "
        "seconds (0: print the start answer)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="print only the run id")
    run.set_defaults(func=with_api(cmd_run))


def add_event_show_arguments(show: argparse.ArgumentParser) -> None:
    """``tempoflow event show`` and ``tempoflow events show``."""
    show.add_argument("event_id")
    show.add_argument(
        "--wait",
        action="store_true",
        help="print once the event is routed and each delivery has an outcome",
    )
    show.add_argument("--timeout", type=float, default=30)
    show.set_defaults(func=with_api(cmd_event_show))


def add_commands(sub: Any) -> None:
    common = api_options()
    run = sub.add_parser("run", parents=[common], help="start a run of a published definition")
    add_run_arguments(run)

    status = sub.add_parser("status", parents=[common], help="show a run")
    status.add_argument("run_id")
    status.add_argument("--wait", action="store_true", help="print the run once it has ended")
    status.add_argument("--timeout", type=float, default=60)
    status.set_defaults(func=with_api(cmd_status))

    event = sub.add_parser("event", help="inspect events")
    event_sub = event.add_subparsers(dest="event_command", required=True)
    show = event_sub.add_parser(
        "show", parents=[common], help="show an event and the runs it was routed to"
    )
    add_event_show_arguments(show)

"""CLI commands that talk to a running API: publish definitions (CI), start and show runs,
show an event's routing.

Exit codes: 0 done, 1 the API refused the request (its problem is printed) or the run
failed or a ``--wait`` timed out, 2 the API could not be reached or the command was
misconfigured.
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

OPEN_RUN = ("SCHEDULED", "QUEUED", "RUNNING", "WAITING")
UNSETTLED_DELIVERY = ("PENDING", "SIGNALED")


class CliError(Exception):
    """A one-line failure for stderr, with the exit code."""

    def __init__(self, message: str, code: int = 2, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status  # the HTTP status of a refusal


def _problem(response: httpx.Response) -> CliError:
    """The API's refusal in one or two lines (plus one per definition error)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = " ".join(response.text.split())[:200] or response.reason_phrase
        return CliError(f"HTTP {response.status_code}: {text}", 1, response.status_code)
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
    return CliError("\n".join(lines), 1, response.status_code)


class Api:
    """A thin client: transport failures and refusals become :class:`CliError`."""

    def __init__(self, args: argparse.Namespace) -> None:
        try:
            settings = ClientSettings()
        except ValidationError as err:
            first = err.errors()[0]
            name = "TEMPOFLOW_" + "_".join(str(p) for p in first["loc"]).upper()
            raise CliError(f"invalid {name}: {first['msg']}") from None
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
            reason = str(err) or type(err).__name__
            raise CliError(
                f"cannot reach the API at {self.url} ({reason}): is the stack running "
                "(make dev)? Check TEMPOFLOW_API_URL, or TEMPOFLOW_API_HOST/TEMPOFLOW_API_PORT"
            ) from None
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


def _load(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise CliError(f"cannot read {path}: {err}") from None


def _run_path(run_id: str) -> str:
    return f"/v1/runs/{quote(run_id, safe='')}"


def cmd_publish(args: argparse.Namespace, api: Api) -> int:
    """Validate, store as draft and publish; prints the version as JSON."""
    definition = _load(args.file)
    key = args.key or Path(args.file).stem
    api.call("POST", f"/v1/definitions/{key}/validate", ok=(200,), json={"definition": definition})
    if args.validate_only:
        print(json.dumps({"key": key, "valid": True}))
        return 0
    api.call(
        "PUT", f"/v1/definitions/{key}", json={"name": args.name or key, "definition": definition}
    )
    published = api.send("POST", f"/v1/definitions/{key}/publish")
    # 201: a new version; 200: the draft equals the latest version (same number).
    created = published.status_code == 201
    print(json.dumps({"key": key, "version": published.json()["version"], "created": created}))
    return 0


def _print_run(run: dict[str, Any], quiet: bool) -> int:
    print(run["id"] if quiet else json.dumps(run, indent=2))
    return 0 if run["status"] in (*OPEN_RUN, "SUCCEEDED") else 1


def _wait_for_end(
    api: Api, run: dict[str, Any], timeout: float, quiet: bool = False
) -> dict[str, Any]:
    run, ended = api.poll(
        _run_path(run["id"]), lambda r: r["status"] not in OPEN_RUN, timeout, first=run
    )
    if not ended:
        _print_run(run, quiet)  # what it is now, for whoever follows up
        raise CliError(
            f"run {run['id']} is still {run['status']} after {timeout:g} s (raise --timeout)", 1
        )
    return dict(run)


def cmd_run(args: argparse.Namespace, api: Api) -> int:
    """Start a run and print it: at once ``--settle 0``, once it ends with ``--wait``, else
    once it waits or ends (at most ``--settle`` seconds)."""
    body: dict[str, Any] = {
        "definition": args.key,
        "input": _load(args.input) if args.input else {},
    }
    if args.version:
        body["version"] = args.version
    if args.idempotency_key:
        body["idempotencyKey"] = args.idempotency_key
    if args.start_at:
        body["startAt"] = args.start_at  # the API checks it (422 with /startAt)
    run = api.call("POST", "/v1/runs", json=body)
    if args.wait:
        run = _wait_for_end(api, run, args.timeout, args.quiet)
    elif args.settle > 0:
        run, _ = api.poll(
            _run_path(run["id"]), lambda r: r["status"] != "RUNNING", args.settle, first=run
        )
    return _print_run(run, args.quiet)


def cmd_status(args: argparse.Namespace, api: Api) -> int:
    """Print a run (``GET /v1/runs/{id}``); with ``--wait``, once it has ended."""
    run = api.call("GET", _run_path(args.run_id))
    if args.wait:
        run = _wait_for_end(api, run, args.timeout)
    return _print_run(run, quiet=False)


def _event_settled(event: dict[str, Any]) -> bool:
    return event["status"] != "PENDING" and all(
        d["status"] not in UNSETTLED_DELIVERY for d in event.get("deliveries") or []
    )


def cmd_event_show(args: argparse.Namespace, api: Api) -> int:
    """Print an event with its routing; with ``--wait``, once routed and every delivery
    has an outcome."""
    path = f"/v1/events/{quote(args.event_id, safe='')}"
    event = api.call("GET", path)
    if args.wait:
        event, settled = api.poll(path, _event_settled, args.timeout, first=event)
        if not settled:
            print(json.dumps(event, indent=2))
            pending = [d["status"] for d in event.get("deliveries") or []]
            why = f"; last error: {event['lastError']}" if event.get("lastError") else ""
            raise CliError(
                f"event {args.event_id} is still {event['status']} (deliveries: "
                f"{', '.join(pending) or 'none'}) after {args.timeout:g} s{why}",
                1,
            )
    print(json.dumps(event, indent=2))
    return 0


def _with_api(command: Callable[[argparse.Namespace, Api], int]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        try:
            with Api(args) as api:
                return command(args, api)
        except CliError as err:
            print(f"tempoflow: {err}", file=sys.stderr)
            return err.code

    return run


def add_commands(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api-url",
        help="default: $TEMPOFLOW_API_URL, else http://$TEMPOFLOW_API_HOST:$TEMPOFLOW_API_PORT",
    )
    common.add_argument("--api-key", help="default: $TEMPOFLOW_API_KEY")
    publish = sub.add_parser(
        "publish", parents=[common], help="validate and publish a definition file (for CI)"
    )
    publish.add_argument("file")
    publish.add_argument("--key", help="definition key (default: the file name)")
    publish.add_argument("--name")
    publish.add_argument("--validate-only", action="store_true")
    publish.set_defaults(func=_with_api(cmd_publish))

    run = sub.add_parser("run", parents=[common], help="start a run of a published definition")
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
    run.set_defaults(func=_with_api(cmd_run))

    status = sub.add_parser("status", parents=[common], help="show a run")
    status.add_argument("run_id")
    status.add_argument("--wait", action="store_true", help="print the run once it has ended")
    status.add_argument("--timeout", type=float, default=60)
    status.set_defaults(func=_with_api(cmd_status))

    event = sub.add_parser("event", help="inspect events")
    event_sub = event.add_subparsers(dest="event_command", required=True)
    show = event_sub.add_parser(
        "show", parents=[common], help="show an event and the runs it was routed to"
    )
    show.add_argument("event_id")
    show.add_argument(
        "--wait",
        action="store_true",
        help="print once the event is routed and each delivery has an outcome",
    )
    show.add_argument("--timeout", type=float, default=30)
    show.set_defaults(func=_with_api(cmd_event_show))

"""``tempoflow tail RUN``: follow a run's live stream until it closes.

Reads ``GET /v1/runs/{id}/stream`` (Server-Sent Events) and prints one line per event;
when the connection drops it reconnects with ``Last-Event-ID``, so nothing is lost or
repeated. Ends with the run's closing ``run.status``: exit 0 if the run SUCCEEDED, 1 if it
ended otherwise (failed, canceled, terminated, timed out). ``--json`` prints one document
at the end: the run id, its final status and every event received.

The SSE parsing is a few lines written here (the ``data:``/``event:``/``id:`` fields of
the W3C format, which is all the stream sends) rather than a dependency.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from launcher.remote import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SERVER,
    Api,
    CliError,
    api_options,
    emit,
    run_path,
    with_api,
)

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT")
RECONNECTS = 5


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Events of an SSE body: ``{"event", "data", "id"}`` (``id`` ``None`` when absent)."""
    event: dict[str, Any] = {}
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield {
                    "event": event.get("event", "message"),
                    "data": "\n".join(data),
                    "id": event.get("id"),
                }
            event, data = {}, []
            continue
        if line.startswith(":"):
            continue  # a comment (the heartbeat)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name in ("event", "id"):
            event[name] = value


class _Late(Exception):
    """``--timeout`` passed before the run closed."""


def _until(lines: Iterator[str], deadline: float | None) -> Iterator[str]:
    """The stream's lines until ``deadline`` (checked at each line: heartbeats included)."""
    for line in lines:
        if deadline is not None and time.monotonic() > deadline:
            raise _Late
        yield line


def _line(kind: str, data: dict[str, Any]) -> str:
    if kind == "run.status":
        error = data.get("error") or {}
        why = f" {error.get('type', '')}: {error.get('message', '')}" if error else ""
        return f"run        {data.get('status')}{why}"
    if kind.startswith("step."):
        attempt = f" attempt {data['attempt']}" if (data.get("attempt") or 1) > 1 else ""
        return f"{kind:<14} {data.get('path')} ({data.get('type')}){attempt}"
    if kind == "log":
        return f"log {data.get('level', ''):<7} {data.get('stepPath')}: {data.get('message')}"
    if kind.startswith(("wait.", "task.")):
        where = data.get("stepPath")
        return f"{kind:<14} {where} {data.get('status', '')}".rstrip()
    return f"{kind:<14} {json.dumps(data)}"


def cmd_tail(args: argparse.Namespace, api: Api) -> int:
    received: list[dict[str, Any]] = []
    last_id: str | None = args.after
    status: str | None = None
    drops = 0
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while status is None:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            with api.http.stream(
                "GET",
                f"{run_path(args.run_id)}/stream",
                headers=headers,
                timeout=httpx.Timeout(30, read=args.idle),
            ) as response:
                if response.status_code != 200:
                    response.read()
                    api.check(response, (200,))
                for event in sse_events(_until(response.iter_lines(), deadline)):
                    data = json.loads(event["data"])
                    if event["id"] is not None:
                        last_id = event["id"]
                    received.append({"id": event["id"], "event": event["event"], "data": data})
                    drops = 0
                    if not args.json:
                        print(_line(event["event"], data), flush=True)
                    if event["event"] == "run.status" and data.get("status") in TERMINAL:
                        status = data["status"]
                        break
                else:
                    # The server ended the stream before the run's close: resume.
                    raise httpx.RemoteProtocolError("the stream ended before the run closed")
        except _Late:
            pass
        except httpx.TransportError as err:
            if not received and isinstance(err, httpx.ConnectError):
                raise api.unreachable(err) from None
            drops += 1
            if drops > RECONNECTS:
                raise CliError(
                    f"the stream of run {args.run_id} dropped {drops} times in a row "
                    f"({err or type(err).__name__}); resume with --after {last_id}",
                    EXIT_SERVER,
                ) from None
            time.sleep(min(2.0, 0.2 * 2**drops))
        if status is None and deadline is not None and time.monotonic() > deadline:
            late = CliError(
                f"run {args.run_id} has not closed after {args.timeout:g} s "
                f"(resume with --after {last_id})",
                EXIT_FAILED,
            )
            late.extra = {"runId": args.run_id, "status": None, "events": received}
            raise late

    emit(args, {"runId": args.run_id, "status": status, "events": received}, lambda: None)
    return EXIT_OK if status == "SUCCEEDED" else EXIT_FAILED


def register(sub: Any) -> None:
    tail = sub.add_parser(
        "tail",
        parents=[api_options()],
        help="follow a run's live events until it ends (exit 0 if it succeeded, else 1)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tail.add_argument("run_id", metavar="RUN")
    tail.add_argument("--after", metavar="ID", help="start after this event id (resume)")
    tail.add_argument(
        "--timeout", type=float, default=0, help="give up after this many seconds (0: never)"
    )
    tail.add_argument(
        "--idle",
        type=float,
        default=60,
        help="reconnect when nothing (not even a heartbeat) came for this long (seconds)",
    )
    tail.set_defaults(func=with_api(cmd_tail))

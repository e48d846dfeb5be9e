"""``tempoflow events send|show``: send an event (``POST /v1/events``) and see its routing.

``send NAME`` takes the payload from ``--payload JSON`` or ``--payload-file FILE`` and a
correlation key from ``--key``; ``--id`` makes a retried send a duplicate (the API answers
the first receipt again, ``duplicate: true``). With ``--wait`` it prints the event once
routed and each run it reached has taken or filtered it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from launcher.cli_output import fields
from launcher.remote import (
    EXIT_OK,
    Api,
    CliError,
    add_event_show_arguments,
    api_options,
    emit,
    load_json,
    wait_for_event,
    with_api,
)


def _payload(args: argparse.Namespace) -> Any:
    if args.payload is not None and args.payload_file is not None:
        raise CliError("give the payload once: --payload or --payload-file")
    if args.payload_file is not None:
        return load_json(args.payload_file)
    if args.payload is not None:
        try:
            return json.loads(args.payload)
        except ValueError as err:
            raise CliError(f"--payload is not JSON: {err}") from None
    return None


def cmd_send(args: argparse.Namespace, api: Api) -> int:
    body: dict[str, Any] = {"name": args.name, "payload": _payload(args)}
    if args.key is not None:
        body["correlationKey"] = args.key
    if args.id is not None:
        body["id"] = args.id
    if args.occurred_at is not None:
        body["occurredAt"] = args.occurred_at
    receipt = api.call("POST", "/v1/events", ok=(200, 202), json=body)
    document = wait_for_event(api, receipt["id"], args.timeout) if args.wait else receipt

    def human() -> None:
        fields(
            [
                ("id", document["id"]),
                ("name", document["name"]),
                ("correlation key", document.get("correlationKey")),
                ("status", document["status"]),
                ("duplicate", document.get("duplicate") or None),
                ("received", document.get("receivedAt")),
            ]
        )
        for d in document.get("deliveries") or []:
            reason = f" ({d['reason']})" if d.get("reason") else ""
            print(f"delivered to run {d['runId']}: {d['status']}{reason}")

    emit(args, document, human)
    return EXIT_OK


def register(sub: Any) -> None:
    common = api_options()
    events = sub.add_parser(
        "events",
        help="send events and see where they went",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    events_sub = events.add_subparsers(dest="events_command", required=True)
    send = events_sub.add_parser("send", parents=[common], help="send an event (POST /v1/events)")
    send.add_argument("name", help="the event name, e.g. payment.received")
    send.add_argument("--payload", metavar="JSON", help="the payload as JSON text")
    send.add_argument("--payload-file", metavar="FILE", help="the payload from a JSON file")
    send.add_argument("--key", help="the correlation key (else the event type's expression)")
    send.add_argument("--id", help="the event's id: sending it again is a no-op (duplicate)")
    send.add_argument("--occurred-at", metavar="TIME", help="RFC 3339 time it happened")
    send.add_argument(
        "--wait",
        action="store_true",
        help="print once routed and each delivery has an outcome",
    )
    send.add_argument("--timeout", type=float, default=30, help="for --wait (seconds)")
    send.set_defaults(func=with_api(cmd_send))
    show = events_sub.add_parser(
        "show", parents=[common], help="an event and the runs it was routed to"
    )
    add_event_show_arguments(show)

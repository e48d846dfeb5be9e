"""CLI commands that talk to a running API: publish definitions (CI), start runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def _client(args: argparse.Namespace) -> httpx.Client:
    key = args.api_key or os.environ.get("TEMPOFLOW_API_KEY")
    if not key:
        sys.exit("tempoflow: set TEMPOFLOW_API_KEY or pass --api-key")
    return httpx.Client(
        base_url=args.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _fail(response: httpx.Response) -> int:
    try:
        body = response.json()
    except ValueError:
        print(f"tempoflow: HTTP {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    print(
        f"tempoflow: {body.get('detail', response.reason_phrase)} ({body.get('code')})",
        file=sys.stderr,
    )
    for error in body.get("errors", []):
        at = f" at {error['position']}" if error.get("position") is not None else ""
        print(
            f"  {error.get('path') or '/'}: {error.get('code')}{at}: {error.get('message')}",
            file=sys.stderr,
        )
    if body.get("hint"):
        print(f"  hint: {body['hint']}", file=sys.stderr)
    return 1


def _load(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        sys.exit(f"tempoflow: cannot read {path}: {err}")


def cmd_publish(args: argparse.Namespace) -> int:
    """Validate, store as draft and publish; prints the version as JSON."""
    definition = _load(args.file)
    key = args.key or Path(args.file).stem
    with _client(args) as http:
        r = http.post(f"/v1/definitions/{key}/validate", json={"definition": definition})
        if r.status_code != 200:
            return _fail(r)
        if args.validate_only:
            print(json.dumps({"key": key, "valid": True}))
            return 0
        r = http.put(
            f"/v1/definitions/{key}", json={"name": args.name or key, "definition": definition}
        )
        if r.status_code not in (200, 201):
            return _fail(r)
        r = http.post(f"/v1/definitions/{key}/publish")
        if r.status_code not in (200, 201):
            return _fail(r)
        version = r.json()
        print(
            json.dumps({"key": key, "version": version["version"], "created": r.status_code == 201})
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Start a run; with --wait, poll until it leaves RUNNING and print it."""
    body: dict[str, Any] = {
        "definition": args.key,
        "input": _load(args.input) if args.input else {},
    }
    if args.version:
        body["version"] = args.version
    if args.idempotency_key:
        body["idempotencyKey"] = args.idempotency_key
    with _client(args) as http:
        r = http.post("/v1/runs", json=body)
        if r.status_code not in (200, 201):
            return _fail(r)
        run = r.json()
        deadline = time.monotonic() + args.timeout
        while args.wait and run["status"] in ("RUNNING", "WAITING"):
            if time.monotonic() > deadline:
                print("tempoflow: still running", file=sys.stderr)
                break
            time.sleep(0.25)
            run = http.get(f"/v1/runs/{run['id']}").json()
    print(json.dumps(run, indent=2))
    return 0 if run["status"] in ("RUNNING", "WAITING", "SUCCEEDED") else 1


def add_commands(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api-url", default=os.environ.get("TEMPOFLOW_API_URL", "http://127.0.0.1:8000")
    )
    common.add_argument("--api-key", help="default: $TEMPOFLOW_API_KEY")
    publish = sub.add_parser(
        "publish", parents=[common], help="validate and publish a definition file (for CI)"
    )
    publish.add_argument("file")
    publish.add_argument("--key", help="definition key (default: the file name)")
    publish.add_argument("--name")
    publish.add_argument("--validate-only", action="store_true")
    publish.set_defaults(func=cmd_publish)
    run = sub.add_parser("run", parents=[common], help="start a run of a published definition")
    run.add_argument("key")
    run.add_argument("--input", help="JSON file with the run input")
    run.add_argument("--version", type=int)
    run.add_argument("--idempotency-key")
    run.add_argument("--wait", action="store_true")
    run.add_argument("--timeout", type=float, default=60)
    run.set_defaults(func=cmd_run)

"""A minimal HTTP receiver for the action benchmark, run in a process of its own so it
does not share the benchmark's interpreter: ``POST /item`` answers a small JSON
document, ``GET /count`` how many items it received.

    python -m bench._receiver --fd FD   (a listening socket the parent opened)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn

received = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global received
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/count":
        answer = json.dumps({"received": received}).encode()
    else:
        received += 1
        answer = json.dumps({"ok": True, "echo": json.loads(body or b"null")}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, fd=args.fd, log_level="warning", access_log=False, lifespan="off")

"""A real run of the plugin's actions: `tempoflow dev` (Temporal, PostgreSQL, worker and
API, as a user starts them) with the plugin named in TEMPOFLOW_ACTION_MODULES."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[1] / "src"

DEFINITION = {
    "steps": [
        {
            "id": "hello",
            "type": "action.call",
            "action": "example.greet",
            "input": {"name": {"$expr": "payload.customer"}},
            "output": "hello",
        },
        {
            "id": "book",
            "type": "action.call",
            "action": "example.record",
            "input": {"ledger": "sales", "amount": {"$expr": "payload.amount"}},
            "output": "booked",
        },
    ],
    "output": {"$expr": "{'greeting': vars.hello.greeting, 'booked': vars.booked}"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(180)
def test_a_run_uses_the_plugin(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    port = _free_port()
    env.update(
        TEMPOFLOW_HOME=str(tmp_path / "home"),
        TEMPOFLOW_API_PORT=str(port),
        TEMPOFLOW_TEMPORAL_PORT=str(_free_port()),
        TEMPOFLOW_TEMPORAL_UI_PORT=str(_free_port()),
        # Not the default 9464: other stacks of the test suite may run at the same time.
        TEMPOFLOW_WORKER_METRICS_PORT=str(_free_port()),
        TEMPOFLOW_ACTION_MODULES="tempoflow_example_plugin",
        TEMPOFLOW_EXAMPLE_OUTBOX=str(outbox),
        PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")])),
    )
    errors = (tmp_path / "dev.err").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.cli", "dev"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        key = ""
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            key = line.split()[-1] if "API key" in line else key
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        assert key.startswith("tf_"), (
            "the dev stack did not start: " + (tmp_path / "dev.err").read_text()[-2000:]
        )
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        r = api.put("/v1/definitions/greet", json={"name": "g", "definition": DEFINITION})
        assert r.status_code == 201, r.text
        assert api.post("/v1/definitions/greet/publish").status_code == 201
        r = api.post(
            "/v1/runs", json={"definition": "greet", "input": {"customer": "Ada", "amount": 7}}
        )
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        view: dict = {}
        while time.monotonic() < deadline and view.get("status") not in ("SUCCEEDED", "FAILED"):
            view = api.get(f"/v1/runs/{run_id}").json()
            time.sleep(0.2)
        assert view["status"] == "SUCCEEDED", view
        assert view["output"] == {
            "greeting": "Hello, Ada!",
            "booked": {"recorded": True, "duplicate": False},
        }
        lines = (outbox / "sales.jsonl").read_text().splitlines()
        assert [json.loads(x)["amount"] for x in lines] == [7]
        api.close()
    finally:
        proc.send_signal(signal.SIGINT)  # the supervisor stops what it started
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        errors.close()

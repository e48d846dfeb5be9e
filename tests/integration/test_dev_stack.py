"""`tempoflow dev` end to end: the real processes, as a user starts them."""

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tempoflow.cli", "dev"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    key = ""
    for line in proc.stdout:
        if "API key" in line:
            key = line.split()[-1]
        if "Press Ctrl-C" in line or time.monotonic() > deadline:
            break
    assert key.startswith("tf_"), "the dev stack did not print its banner"
    return proc, key


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tempoflow.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    code = proc.wait(60)
    if proc.stdout is not None:
        proc.stdout.close()
    return code


def _event_tour(http: httpx.Client, repo_root: Path) -> None:
    """The README's event step: the API process routes the event to the worker's run."""
    event_type = json.loads((repo_root / "examples/payment-event-type.json").read_text())
    assert http.put("/v1/event-types/payment.received", json=event_type).status_code == 201
    definition = json.loads((repo_root / "examples/payment-wait.json").read_text())
    http.put("/v1/definitions/payment-wait", json={"name": "Payment", "definition": definition})
    assert http.post("/v1/definitions/payment-wait/publish").status_code == 201
    run = http.post("/v1/runs", json={"definition": "payment-wait", "input": {"orderId": "o-1001"}})
    event = {
        "name": "payment.received",
        "id": "pay-1",
        "payload": {"orderId": "o-1001", "amount": 599.5},
    }
    assert http.post("/v1/events", json=event).status_code == 202
    for _ in range(150):
        view = http.get(f"/v1/runs/{run.json()['id']}").json()
        if view["status"] not in ("RUNNING", "WAITING"):
            break
        time.sleep(0.2)
    assert view["output"] == {"orderId": "o-1001", "status": "paid", "paymentId": "pay-1"}, view


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    env.update(
        {
            "TEMPOFLOW_HOME": str(tmp_path / "home"),
            "TEMPOFLOW_API_PORT": str(_free_port()),
            "TEMPOFLOW_TEMPORAL_PORT": str(_free_port()),
            "TEMPOFLOW_TEMPORAL_UI_PORT": str(_free_port()),
        }
    )
    return env


@pytest.mark.timeout(240)
def test_dev_stack_runs_the_example_and_restarts(
    tmp_path: Path, dev_env: dict[str, str], repo_root: Path
) -> None:
    proc, key = _start(tmp_path, dev_env)
    api = f"http://127.0.0.1:{dev_env['TEMPOFLOW_API_PORT']}"
    ui = f"http://127.0.0.1:{dev_env['TEMPOFLOW_TEMPORAL_UI_PORT']}"
    h = {"Authorization": f"Bearer {key}"}
    try:
        definition = json.loads((repo_root / "examples/order-fulfilment.json").read_text())
        data = json.loads((repo_root / "examples/order-input.json").read_text())
        with httpx.Client(base_url=api, headers=h, timeout=30) as http:
            assert (
                http.put(
                    "/v1/definitions/order-fulfilment",
                    json={"name": "Order", "definition": definition},
                ).status_code
                == 201
            )
            assert http.post("/v1/definitions/order-fulfilment/publish").status_code == 201
            run = http.post(
                "/v1/runs", json={"definition": "order-fulfilment", "input": data}
            ).json()
            for _ in range(100):
                view = http.get(f"/v1/runs/{run['id']}").json()
                if view["status"] != "RUNNING":
                    break
                time.sleep(0.2)
            assert view["status"] == "SUCCEEDED", view
            assert view["output"] == {
                "orderId": "o-1001",
                "status": "accepted",
                "total": 599.5,
                "lines": 2,
            }
            assert view["temporalUiUrl"].startswith(ui)
            _event_tour(http, repo_root)
        assert httpx.get(ui, timeout=10).status_code == 200  # the Web UI is served
        # The CI-facing commands against the same stack.
        cli_env = {**dev_env, "TEMPOFLOW_API_URL": api, "TEMPOFLOW_API_KEY": key}
        example = str(repo_root / "examples/order-fulfilment.json")
        out = _cli(["publish", example], cli_env)
        assert json.loads(out.stdout) == {"key": "order-fulfilment", "version": 1, "created": False}
        out = _cli(
            [
                "run",
                "order-fulfilment",
                "--input",
                str(repo_root / "examples/order-input.json"),
                "--wait",
            ],
            cli_env,
        )
        assert out.returncode == 0 and json.loads(out.stdout)["status"] == "SUCCEEDED"
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"steps": [{"id": "a", "type": "nope"}]}))
        out = _cli(["publish", str(bad), "--validate-only"], cli_env)
        assert out.returncode == 1 and "/steps/0" in out.stderr
        out = _cli(["apikey", "create", "--tenant", "acme", "--role", "ingest"], cli_env)
        assert out.returncode == 0 and out.stdout.strip().startswith("tf_")
        assert len(out.stdout.strip().splitlines()) == 1
    finally:
        assert _stop(proc) == 0
    # Second start: same data, same key, the run is still there.
    proc, key2 = _start(tmp_path, dev_env)
    try:
        assert key2 == key
        view = httpx.get(f"{api}/v1/runs/{run['id']}", headers=h, timeout=30).json()
        assert view["status"] == "SUCCEEDED"
        # Temporal kept its history too.
        desc = subprocess.run(
            [
                str(Path(sys.executable).parent / "temporal"),
                "workflow",
                "describe",
                "--address",
                f"127.0.0.1:{dev_env['TEMPOFLOW_TEMPORAL_PORT']}",
                "-w",
                run["workflowId"],
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert json.loads(desc.stdout)["workflowExecutionInfo"]["status"].endswith("COMPLETED")
    finally:
        assert _stop(proc) == 0


def test_port_in_use_is_a_clear_error(tmp_path: Path, dev_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", int(dev_env["TEMPOFLOW_API_PORT"])))
        busy.listen()
        out = subprocess.run(
            [sys.executable, "-m", "tempoflow.cli", "dev"],
            cwd=tmp_path,
            env=dev_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert f"port {dev_env['TEMPOFLOW_API_PORT']} (API) is already in use" in out.stderr
    assert "TEMPOFLOW_API_PORT" in out.stderr

"""`tempoflow dev` end to end: the real processes, as a user starts them."""

from __future__ import annotations

import copy
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

from tests.integration.readme_tour import Command, run_tour, tour_blocks

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.cli", "dev"],
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
    if not key.startswith("tf_"):
        proc.send_signal(signal.SIGINT)  # the supervisor stops what it started
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        pytest.fail(f"the dev stack did not print its banner (exit code {proc.returncode})")
    return proc, key


def _cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launcher.cli", *args],
        env=env,
        cwd=cwd,
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


def _readme_tour(tmp_path: Path, env: dict[str, str], repo_root: Path) -> list[Command]:
    """The README's tour as printed, on this stack's ports and home: the command-line path
    alone, its last block once more (it must be repeatable on the kept data), then the
    plain-HTTP alternatives."""
    blocks = tour_blocks(repo_root / "README.md")
    main = [b for b in blocks if not b.alternative and b.commands[0].text != "make dev"]
    alternatives = [b for b in blocks if b.alternative]
    assert main and alternatives
    files = tmp_path / "files"
    files.mkdir()
    return run_tour(
        [*main, copy.deepcopy(main[-1]), *alternatives],
        substitutions={
            "http://127.0.0.1:8000": f"http://127.0.0.1:{env['TEMPOFLOW_API_PORT']}",
            ".tempoflow/": f"{env['TEMPOFLOW_HOME']}/",
            ".venv/bin/tempoflow": str(Path(sys.executable).parent / "tempoflow"),
            "/tmp/": f"{files}/",
        },
        cwd=repo_root,
        env=env,  # no TEMPOFLOW_API_URL: the commands find the API from TEMPOFLOW_API_PORT
    )


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    env.update(
        {
            "TEMPOFLOW_HOME": str(tmp_path / "home"),
            "TEMPOFLOW_API_PORT": str(_free_port()),
            "TEMPOFLOW_TEMPORAL_PORT": str(_free_port()),
            "TEMPOFLOW_TEMPORAL_UI_PORT": str(_free_port()),
            "TEMPOFLOW_WORKER_METRICS_PORT": str(_free_port()),
        }
    )
    return env


@pytest.mark.timeout(300)
def test_dev_stack_runs_the_readme_tour_and_restarts(
    tmp_path: Path, dev_env: dict[str, str], repo_root: Path
) -> None:
    # A database URL recorded by an earlier start on an external database is dropped when
    # the stack uses its embedded one (the CLI would otherwise follow it).
    home = Path(dev_env["TEMPOFLOW_HOME"])
    home.mkdir()
    (home / "database-url").write_text("postgresql://nobody@127.0.0.1:1/gone\n")
    proc, key = _start(tmp_path, dev_env)
    assert not (home / "database-url").exists()
    api = f"http://127.0.0.1:{dev_env['TEMPOFLOW_API_PORT']}"
    ui = f"http://127.0.0.1:{dev_env['TEMPOFLOW_TEMPORAL_UI_PORT']}"
    h = {"Authorization": f"Bearer {key}"}
    try:
        tour = _readme_tour(tmp_path, dev_env, repo_root)
        run = json.loads(next(c.output for c in tour if "run order-fulfilment" in c.text))
        assert run["temporalUiUrl"].startswith(ui)
        assert httpx.get(ui, timeout=10).status_code == 200  # the Web UI is served
        # The mail the tour sent landed in the sink, with the run's Message-ID.
        mailed = json.loads(next(c.output for c in tour if "run order-email" in c.text))
        [eml] = (home / "mail").glob("*.eml")
        assert f"Message-ID: {mailed['output']['messageId']}" in eml.read_text()
        # The UI decodes payloads through the API's codec endpoint, from the browser: its
        # origin passes CORS and, in development, needs no key.
        codec = httpx.get(f"{ui}/api/v1/settings", timeout=10).json()["Codec"]
        assert codec["Endpoint"] == f"{api}/codec"
        preflight = httpx.options(
            f"{api}/codec/decode",
            headers={
                "Origin": ui,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
            timeout=10,
        )
        assert preflight.headers["access-control-allow-origin"] == ui
        decoded = httpx.post(
            f"{api}/codec/decode",
            json={"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "MQ=="}]},
            headers={"Origin": ui, "X-Namespace": "default"},
            timeout=10,
        )
        assert decoded.status_code == 200, decoded.text
        # The worker process's own HTTP port: health and metrics (its runs, the SDK's).
        worker = f"http://127.0.0.1:{dev_env['TEMPOFLOW_WORKER_METRICS_PORT']}"
        assert httpx.get(f"{worker}/healthz", timeout=10).json() == {"status": "ok"}
        ready = httpx.get(f"{worker}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        scraped = httpx.get(f"{worker}/metrics", timeout=10).text
        assert 'tempoflow_runs_finished_total{definition="order-fulfilment"' in scraped
        assert "temporal_workflow_task_schedule_to_start_latency_bucket" in scraped
        assert "tempoflow_dispatcher_lag_seconds" in httpx.get(f"{api}/metrics", timeout=10).text
        # The CI-facing commands against the same stack (URL from TEMPOFLOW_API_PORT).
        cli_env = {**dev_env, "TEMPOFLOW_API_KEY": key}
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"steps": [{"id": "a", "type": "nope"}]}))
        out = _cli(["publish", str(bad), "--validate-only"], cli_env)
        assert out.returncode == 1 and "/steps/0" in out.stderr
        # --wait gives up after --timeout: exit 1, the run as it is now, what to do.
        order = tmp_path / "order.json"
        order.write_text(json.dumps({"orderId": "o-never-paid"}))
        out = _cli(
            ["run", "payment-wait", "--input", str(order), "--wait", "--timeout", "1"], cli_env
        )
        assert out.returncode == 1 and json.loads(out.stdout)["status"] == "WAITING"
        assert "is still WAITING after 1 s (raise --timeout)" in out.stderr
        # A refusal is the problem's code, detail and hint, not a traceback.
        out = _cli(["status", "no-such-run"], cli_env)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.startswith("tempoflow: HTTP 404 run_not_found: "), out.stderr
        out = _cli(["run", "order-fulfilment"], {**cli_env, "TEMPOFLOW_API_KEY": "tf_wrong"})
        assert out.returncode == 1
        assert out.stderr.splitlines()[0].startswith("tempoflow: HTTP 401 invalid_api_key: ")
        assert "hint: " in out.stderr and len(out.stderr.splitlines()) == 2, out.stderr
        # apikey create from anywhere finds the stack's database through TEMPOFLOW_HOME.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        out = _cli(["apikey", "create", "--tenant", "acme", "--role", "ingest"], cli_env, elsewhere)
        assert out.returncode == 0 and out.stdout.strip().startswith("tf_"), out.stderr
        assert len(out.stdout.strip().splitlines()) == 1
        assert list(elsewhere.iterdir()) == []
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
            [sys.executable, "-m", "launcher.cli", "dev"],
            cwd=tmp_path,
            env=dev_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert f"port {dev_env['TEMPOFLOW_API_PORT']} (API) is already in use" in out.stderr
    assert "TEMPOFLOW_API_PORT" in out.stderr

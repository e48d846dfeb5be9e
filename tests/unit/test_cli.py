"""The ``tempoflow`` command's failures a new user meets first: where the API is, and
where the database is. Nothing here starts a server."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from launcher import remote
from launcher.database import DatabaseNotFound, ensure_database_url, record_database_url
from tempoflow.settings import ClientSettings, Settings
from tests.servers import closed_port

REPO = Path(__file__).resolve().parents[2]


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "launcher.cli", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["publish", str(REPO / "examples/order-fulfilment.json")],
        ["run", "order-fulfilment", "--wait"],
        ["status", "some-run"],
        ["event", "show", "pay-1", "--wait"],
        ["runs", "list", "--all"],
        ["runs", "cancel", "r1"],
        ["events", "send", "order.paid"],
        ["tail", "r1"],
    ],
)
def test_unreachable_api_is_one_line_naming_the_url_from_the_port(
    args: list[str], tmp_path: Path
) -> None:
    with closed_port() as port:  # nothing listens there, nor can start to
        out = _cli(args, tmp_path, TEMPOFLOW_API_PORT=str(port), TEMPOFLOW_API_KEY="tf_x")
    assert out.returncode == 3  # server or connection error
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"cannot reach the API at http://127.0.0.1:{port} " in lines[0]
    assert "TEMPOFLOW_API_PORT" in lines[0] and "TEMPOFLOW_API_URL" in lines[0]


def test_missing_api_key_and_bad_port_are_one_line(tmp_path: Path) -> None:
    out = _cli(["status", "r"], tmp_path)
    assert out.returncode == 2
    assert (
        out.stderr == "tempoflow: set TEMPOFLOW_API_KEY or pass --api-key (make dev prints a key)\n"
    )
    out = _cli(["status", "r"], tmp_path, TEMPOFLOW_API_PORT="eighty", TEMPOFLOW_API_KEY="k")
    assert out.returncode == 2
    assert out.stderr.startswith("tempoflow: invalid TEMPOFLOW_API_PORT: ")


def test_api_url_comes_from_the_url_else_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEMPOFLOW_API_URL", "TEMPOFLOW_API_HOST", "TEMPOFLOW_API_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert ClientSettings().resolved_api_url == "http://127.0.0.1:8000"
    monkeypatch.setenv("TEMPOFLOW_API_PORT", "8001")
    assert ClientSettings().resolved_api_url == "http://127.0.0.1:8001"
    monkeypatch.setenv("TEMPOFLOW_API_HOST", "0.0.0.0")  # a bind address: reach it locally
    assert ClientSettings().resolved_api_url == "http://127.0.0.1:8001"
    monkeypatch.setenv("TEMPOFLOW_API_HOST", "::1")
    assert ClientSettings().resolved_api_url == "http://[::1]:8001"
    monkeypatch.setenv("TEMPOFLOW_API_URL", "https://tempoflow.example/")
    assert ClientSettings().resolved_api_url == "https://tempoflow.example"


def test_apikey_create_without_a_database_creates_none(tmp_path: Path) -> None:
    out = _cli(["apikey", "create", "--tenant", "acme", "--role", "admin"], tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    assert "TEMPOFLOW_HOME" in out.stderr and "TEMPOFLOW_DATABASE_URL" in out.stderr
    assert str(tmp_path / ".tempoflow") in out.stderr
    assert list(tmp_path.iterdir()) == []  # no embedded PostgreSQL was started here


def test_the_database_url_recorded_by_the_dev_stack_is_found(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=None)
    with pytest.raises(DatabaseNotFound):
        ensure_database_url(settings)
    record_database_url(tmp_path, "postgresql://u@db.internal/tempoflow")
    assert ensure_database_url(settings).database_url == "postgresql://u@db.internal/tempoflow"
    assert (tmp_path / "database-url").stat().st_mode & 0o077 == 0  # it may hold a password
    explicit = Settings(home=tmp_path, database_url="postgresql://other/x")
    assert ensure_database_url(explicit).database_url == "postgresql://other/x"
    record_database_url(tmp_path, None)  # the stack now uses its embedded server
    with pytest.raises(DatabaseNotFound):
        ensure_database_url(settings)


def test_run_start_at_is_sent_as_start_at_and_a_scheduled_run_is_open(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``tempoflow run --start-at T`` sends ``startAt`` (the API validates it) and a
    SCHEDULED answer is a success, not a failed run."""
    sent: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(201, json={"id": "r1", "status": "SCHEDULED"})

    parser = argparse.ArgumentParser()
    remote.add_commands(parser.add_subparsers())
    args = parser.parse_args(
        ["run", "greet", "--start-at", "2026-12-01T09:00:00+01:00", "--settle", "0", "-q"]
    )
    api = remote.Api.__new__(remote.Api)
    api.url = "http://api.test"
    api.http = httpx.Client(base_url=api.url, transport=httpx.MockTransport(answer))
    assert remote.cmd_run(args, api) == 0
    assert sent == [{"definition": "greet", "input": {}, "startAt": "2026-12-01T09:00:00+01:00"}]
    assert capsys.readouterr().out.strip() == "r1"

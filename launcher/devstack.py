"""``tempoflow dev``: Temporal dev server (with UI), PostgreSQL, migrations, worker, API.

Children run in their own sessions so Ctrl-C reaches only this supervisor, which then
stops them in order: API, worker (graceful: in-flight activities are retried after the
next start), Temporal, PostgreSQL. Data lives under ``TEMPOFLOW_HOME`` and is reused.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from launcher import embedded, migrate
from launcher.database import ensure_database_url, record_database_url
from launcher.mailsink import start_mail_sink
from tempoflow.settings import Settings

DEV_TENANT = "dev"


def _check_ports(settings: Settings) -> None:
    embedded.ensure_port_free(settings.api_host, settings.api_port, "API", "TEMPOFLOW_API_PORT")
    if settings.worker_metrics_port:
        embedded.ensure_port_free(
            settings.worker_metrics_host,
            settings.worker_metrics_port,
            "worker metrics",
            "TEMPOFLOW_WORKER_METRICS_PORT",
        )
    if not settings.temporal_address:
        embedded.ensure_port_free(
            "127.0.0.1", settings.temporal_port, "Temporal", "TEMPOFLOW_TEMPORAL_PORT"
        )
        embedded.ensure_port_free(
            "127.0.0.1", settings.temporal_ui_port, "Temporal UI", "TEMPOFLOW_TEMPORAL_UI_PORT"
        )


async def _dev_api_key(settings: Settings, home: Path) -> str:
    """Reuse the development key stored under home, or create one (tenant ``dev``)."""
    from app.auth import authenticate, create_api_key
    from projections.db import create_engine, session_factory

    path = home / "dev-api-key"
    engine = create_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        async with session_factory(engine).begin() as session:
            if path.exists():
                key = path.read_text().strip()
                if await authenticate(session, key, settings.api_key_pepper):
                    return key
            key = await create_api_key(
                session,
                tenant=DEV_TENANT,
                roles=["admin"],
                pepper=settings.api_key_pepper,
                name="development key",
            )
    finally:
        await engine.dispose()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _browser_url(settings: Settings) -> str:
    """The API's URL as a browser on this machine reaches it (wildcard binds via
    loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(
        settings.api_host, settings.api_host
    )
    return f"http://{host}:{settings.api_port}"


def _spawn(
    args: list[str], env: dict[str, str], log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else None
    return subprocess.Popen(
        args, env=env, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True
    )


def _stop(
    proc: subprocess.Popen[bytes] | None, name: str, sig: int = signal.SIGTERM, timeout: float = 15
) -> None:
    if proc is None or proc.poll() is not None:
        return
    print(f"stopping {name}…", file=sys.stderr)
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _serve(
    settings: Settings, home: Path, children: dict[str, subprocess.Popen[bytes]]
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    env = dict(os.environ)
    env["TEMPOFLOW_DATABASE_URL"] = settings.database_url or ""
    env["TEMPOFLOW_HOME"] = str(home)
    api = f"http://{settings.api_host}:{settings.api_port}"
    mail = f"{settings.smtp.host}:{settings.smtp.port} (TEMPOFLOW_SMTP__HOST)"
    sink = None
    if not settings.smtp.host:
        # email.send goes to a local sink that keeps every message as a file.
        sink, sink_port = await start_mail_sink(home / "mail")
        env["TEMPOFLOW_SMTP__HOST"] = "127.0.0.1"
        env["TEMPOFLOW_SMTP__PORT"] = str(sink_port)
        env["TEMPOFLOW_SMTP__TLS"] = "none"
        env.setdefault("TEMPOFLOW_SMTP__FROM_ADDRESS", "tempoflow@localhost")
        mail = f"{home / 'mail'}/*.eml (SMTP sink on 127.0.0.1:{sink_port})"
    if not settings.temporal_address:
        # The Web UI decodes payloads through the API's codec endpoint (encrypted history
        # with TEMPOFLOW_PAYLOAD_KEY); the browser calls it from the UI's origin.
        ui_origins = [
            f"http://{host}:{settings.temporal_ui_port}" for host in ("127.0.0.1", "localhost")
        ]
        env.setdefault("TEMPOFLOW_CODEC_CORS_ORIGINS", ",".join(ui_origins))
        children["temporal"] = _spawn(
            embedded.temporal_dev_server_command(
                port=settings.temporal_port,
                ui_port=settings.temporal_ui_port,
                db_file=home / "temporal.db",
                extra=["--ui-codec-endpoint", f"{_browser_url(settings)}/codec"],
            ),
            env,
            home / "temporal.log",
        )
        await embedded.wait_for_port("127.0.0.1", settings.temporal_port, within=60)
        env["TEMPOFLOW_TEMPORAL_ADDRESS"] = settings.resolved_temporal_address
        env.setdefault("TEMPOFLOW_TEMPORAL_UI_URL", f"http://127.0.0.1:{settings.temporal_ui_port}")
    await asyncio.to_thread(migrate.upgrade, settings.database_url or "")
    key = await _dev_api_key(settings, home)

    cli = [sys.executable, "-m", "launcher.cli"]
    children["worker"] = _spawn([*cli, "worker"], env)
    children["api"] = _spawn([*cli, "api"], env)
    await embedded.wait_for_port(settings.api_host, settings.api_port, within=60)
    ui = env.get("TEMPOFLOW_TEMPORAL_UI_URL", "(external Temporal: see its UI)")
    encrypted = "encrypted (TEMPOFLOW_PAYLOAD_KEY)" if settings.payload_key else "not encrypted"
    print(
        "\nTempoflow is running\n"
        f"  API docs     {api}/docs\n"
        f"  Temporal UI  {ui}\n"
        f"  API key      {key}\n"
        f"  data         {home}\n"
        f"  mail         {mail}\n"
        f"  history      {encrypted}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    try:
        while not stop.is_set():
            exited = [name for name, proc in children.items() if proc.poll() is not None]
            if exited:
                print(f"tempoflow dev: {', '.join(exited)} exited; stopping", file=sys.stderr)
                return 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                pass
        return 0
    finally:
        if sink is not None:
            sink.close()


def run_dev(settings: Settings) -> int:
    """Run the stack in the foreground until Ctrl-C; returns the exit code."""
    from activities.channels import load_channels
    from activities.plugins import PluginError, load_plugins

    try:
        # The worker and the API load the same plugins; refuse before starting anything.
        load_channels(load_plugins(settings.action_modules).registry)
    except PluginError as err:
        print(f"tempoflow dev: {err}; not starting", file=sys.stderr)
        return 2
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    try:
        _check_ports(settings)
    except embedded.PortInUse as err:
        print(f"tempoflow dev: {err}", file=sys.stderr)
        return 2
    # Other commands (``tempoflow apikey create``) find this stack's database via home.
    record_database_url(home, settings.database_url)
    settings = ensure_database_url(settings, create=True)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        return asyncio.run(_serve(settings, home, children))
    finally:
        _stop(children.get("api"), "API")
        _stop(children.get("worker"), "worker")
        _stop(children.get("temporal"), "Temporal", signal.SIGINT)

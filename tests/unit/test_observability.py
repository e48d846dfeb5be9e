"""Readiness checks never hang; action attempts are counted by outcome."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from activities.metrics import observe_action
from app.routers.health import run_checks


async def test_a_hanging_check_fails_within_its_budget() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    async def fine() -> str:
        return "1.0 s"

    async def broken() -> None:
        raise ConnectionRefusedError("refused")

    started = asyncio.get_running_loop().time()
    ok, checks = await run_checks({"slow": hangs, "fine": fine, "broken": broken}, 0.2)
    took = asyncio.get_running_loop().time() - started
    assert not ok
    assert checks == {
        "slow": "error: no answer within 0.2 s",
        "fine": "ok: 1.0 s",
        "broken": "error: ConnectionRefusedError: refused",
    }
    assert took < 1.0  # concurrently, each within the budget
    assert await run_checks({"fine": fine}, 0.2) == (True, {"fine": "ok: 1.0 s"})


def attempts(action: str, outcome: str) -> float:
    labels = {"action": action, "outcome": outcome}
    return REGISTRY.get_sample_value("tempoflow_action_attempts_total", labels) or 0.0


async def test_action_attempts_by_outcome() -> None:
    with observe_action("unit.ok"):
        pass
    with pytest.raises(ValueError), observe_action("unit.bad"):
        raise ValueError("no")

    async def cancelled() -> None:
        with observe_action("unit.cancel"):
            await asyncio.sleep(10)

    task = asyncio.create_task(cancelled())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts("unit.ok", "succeeded") == 1
    assert attempts("unit.bad", "failed") == 1
    assert attempts("unit.cancel", "canceled") == 1
    count = REGISTRY.get_sample_value(
        "tempoflow_action_duration_seconds_count", {"action": "unit.ok", "outcome": "succeeded"}
    )
    assert count == 1


async def test_worker_http_port_in_use_is_a_clear_error() -> None:
    import socket

    from starlette.applications import Starlette

    from launcher.worker_http import WorkerHttp

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match="TEMPOFLOW_WORKER_METRICS_PORT"):
            await WorkerHttp(Starlette(), "127.0.0.1", port).start()

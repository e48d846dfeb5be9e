"""Overlapping dispatcher rounds keep each workflow's deliveries in inbox order: a
round's delivery to a workflow waits for that workflow's deliveries of earlier rounds,
and only for those."""

from __future__ import annotations

import asyncio
from typing import Any

from app.events.dispatcher import Dispatcher
from app.events.routing import Target
from projections.models import Event
from tempoflow.records import DeliveryStatus
from tempoflow.settings import Settings


class Recording(Dispatcher):
    """Deliveries that take as long as the test says and record when they ran."""

    def __init__(self, delays: dict[int, float]) -> None:
        super().__init__(None, None, Settings())  # type: ignore[arg-type]
        self.delays = delays
        self.log: list[tuple[str, int]] = []

    async def _deliver_one(self, target: Target) -> None:
        seq = target.event.seq
        self.log.append(("start", seq))
        await asyncio.sleep(self.delays.get(seq, 0))
        target.outcome = DeliveryStatus.SIGNALED
        self.log.append(("end", seq))


def target(seq: int, workflow_id: str) -> Target:
    row: dict[str, Any] = {"workflow_id": workflow_id}
    return Target(event=Event(seq=seq), row=row)


async def test_a_later_round_waits_for_the_same_workflow_only() -> None:
    d = Recording({1: 0.2})
    first = d._chain("wf-a", [target(1, "wf-a")])  # slow
    second = d._chain("wf-a", [target(3, "wf-a")])  # a later round, same workflow
    other = d._chain("wf-b", [target(2, "wf-b")])  # a later round, another workflow
    await asyncio.wait([first, second, other])
    log = d.log
    assert log.index(("end", 1)) < log.index(("start", 3))  # in order for wf-a
    assert log.index(("end", 2)) < log.index(("end", 1))  # wf-b did not wait for wf-a
    assert d._chains == {}  # nothing kept once delivered


async def test_a_failed_earlier_delivery_does_not_stop_the_next() -> None:
    class Failing(Recording):
        async def _deliver_one(self, target: Target) -> None:
            if target.event.seq == 1:
                self.log.append(("failed", 1))
                raise RuntimeError("signal refused")
            await super()._deliver_one(target)

    d = Failing({})
    first = d._chain("wf-a", [target(1, "wf-a")])
    second = d._chain("wf-a", [target(2, "wf-a")])
    await asyncio.wait([first, second])
    assert d.log == [("failed", 1), ("start", 2), ("end", 2)]
    assert isinstance(first.exception(), RuntimeError)

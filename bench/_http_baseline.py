"""The hand-written workflow ``actions.py`` compares ``http.request`` with: ten activities
in a row, each one POST through a shared httpx client.

Kept in its own module: the workflow sandbox re-imports the module defining a workflow.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import httpx  # used by the activity only

STEPS = 10


class CallIn(BaseModel):
    url: str
    i: int


class CallOut(BaseModel):
    status: int
    body: Any


class BaselineHttp:
    """The activity and the client it holds (one per worker, as a developer would)."""

    def __init__(self) -> None:
        self.client = httpx.AsyncClient(trust_env=False)

    @activity.defn(name="bench.http_call")
    async def call(self, data: CallIn) -> CallOut:
        info = activity.info()
        response = await self.client.post(
            data.url,
            json={"i": data.i},
            headers={"Idempotency-Key": f"{info.workflow_id}/{info.activity_id}"},
            timeout=30,
        )
        if response.status_code >= 400:
            raise RuntimeError(f"status {response.status_code}")
        return CallOut(status=response.status_code, body=response.json())


@workflow.defn(name="bench.http_baseline")
class HttpBaselineWorkflow:
    @workflow.run
    async def run(self, url: str) -> dict[str, int]:
        out = {}
        for i in range(STEPS):
            r = await workflow.execute_activity(
                "bench.http_call",
                CallIn(url=url, i=i),
                result_type=CallOut,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            out[f"r{i}"] = r.status
        return out

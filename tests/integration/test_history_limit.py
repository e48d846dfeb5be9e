"""A run that outgrows Temporal's history limit ends with a true projection.

This module runs on its own dev server that terminates executions at 400 history events
(``limit.historyCount.error``; the default is 51,200). A run that cannot continue as new
in time (a long loop inside a ``finally``) would be terminated by Temporal and keep a
RUNNING projection for ever; with ``TEMPOFLOW_RUN_LIMITS__MAX_HISTORY_EVENTS`` below the
server's limit the interpreter fails it first, through the normal path, projected FAILED.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from tests.conftest import DEV_SERVER_ARGS, dev_server
from tests.integration.conftest import Stack


@pytest.fixture(scope="module")
async def temporal_client() -> AsyncIterator[Client]:
    async with dev_server(
        [*DEV_SERVER_ARGS, "--dynamic-config-value", "limit.historyCount.error=400"]
    ) as client:
        yield client


@pytest.fixture
def history_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPOFLOW_RUN_LIMITS__MAX_HISTORY_EVENTS", "300")


async def test_run_past_the_history_limit_fails_and_is_projected(
    history_limit: None, stack: Stack
) -> None:
    await stack.publish(
        "huge-finally",
        {
            "steps": [
                {
                    "id": "t",
                    "type": "control.tryCatch",
                    "try": [{"id": "a", "type": "action.call", "action": "core.noop"}],
                    "finally": [
                        {
                            "id": "each",
                            "type": "control.forEach",
                            "items": "[1..100]",
                            # Regular activities: a local one (core.noop) adds too few history
                            # events per step to get there.
                            "steps": [{"id": "n", "type": "action.call", "action": "test.echo"}],
                        }
                    ],
                }
            ]
        },
    )
    run = await stack.start("huge-finally")
    handle = stack.client.get_workflow_handle(run["workflowId"])
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED  # not TERMINATED
    view = await stack.run_view(run["id"])
    assert view["status"] == "FAILED"
    assert view["error"]["type"] == "HistoryLimitExceeded"
    assert view["error"]["stepPath"] == "/steps/0/finally/0/steps/0"

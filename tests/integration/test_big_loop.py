"""The 10,000-item loop, in a file of its own so ``--dist loadfile`` can run it beside
the rest of ``test_long_runs.py`` (the longest test of the suite).

The test server suggests continue-as-new after 100 events (see tests/conftest.py): the
loop continues as new many times; every execution's history stays bounded and the
result is complete. ``core.noop`` runs as a local activity (it declares itself local).
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_long_runs import executions


@pytest.mark.timeout(600)
async def test_ten_thousand_item_loop(stack: Stack) -> None:
    await stack.publish(
        "big",
        {
            "steps": [
                {
                    "id": "each",
                    "type": "control.forEach",
                    "items": "[1..10000]",
                    "concurrency": 20,
                    "result": {"$expr": "item"},
                    "output": "done",
                    "steps": [{"id": "a", "type": "action.call", "action": "core.noop"}],
                },
                {"id": "count", "type": "transform.assign", "assign": {"n": "$count(vars.done)"}},
            ]
        },
    )
    run = await stack.start("big")
    out = (await stack.result(run))["output"]
    assert out["n"] == 10000 and out["done"][-1] == 10000
    lengths = await executions(stack, run["workflowId"])
    assert max(lengths) < 10240

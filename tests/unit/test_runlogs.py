"""Run-log capture (activities/runlogs.py) and the processes' log formats."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from typing import Any

from activities import runlogs
from launcher import logs
from temporal_workflows.models import ActionInvocation


def test_log_lines_keep_secrets_masking_composable() -> None:
    """The run-log capture is a handler behind the action logger's filters: a filter
    that rewrites records (as secret masking does) runs before the line is kept."""

    class Mask(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.msg, record.args = record.getMessage().replace("hunter2", "[secret]"), None
            return True

    logger = logging.getLogger(runlogs.ACTION_LOGGER)
    mask = Mask()
    logger.addFilter(mask)
    try:
        runlogs.install()
        inv = ActionInvocation.model_construct(
            tenant="t", run_id="r", seq=3, step_path="/steps/0", loop=None
        )

        async def attempt() -> list[Any]:
            lines = runlogs.collect(inv, 2)
            logger.info("password is %s", "hunter2", extra={"fields": {"k": "v"}})
            return lines.records()

        records = asyncio.run(attempt())
    finally:
        logger.removeFilter(mask)
    assert [(r.message, r.fields, r.attempt, r.seq) for r in records] == [
        ("password is [secret]", {"k": "v"}, 2, 3)
    ]


def test_lines_outside_an_attempt_are_not_kept_and_the_limit_holds() -> None:
    logger = logging.getLogger(runlogs.ACTION_LOGGER)
    runlogs.install()
    inv = ActionInvocation.model_construct(
        tenant="t", run_id="r", seq=1, step_path="/steps/0", loop=None
    )

    async def attempt() -> list[Any]:
        lines = runlogs.collect(inv, 1)
        for i in range(runlogs.MAX_LINES + 5):
            logger.warning("line %d", i)
        return lines.records()

    async def elsewhere() -> None:
        logger.warning("not in an attempt")

    records = asyncio.run(attempt())
    asyncio.run(elsewhere())
    assert len(records) == runlogs.MAX_LINES + 1
    assert records[-1].message == f"5 more line(s) left out (limit {runlogs.MAX_LINES})"
    assert [r.n for r in records] == list(range(1, runlogs.MAX_LINES + 2))


def test_json_format_writes_one_object_per_line_with_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    logger = logging.getLogger("tempoflow.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("charged %s", "o-1", extra={"run_id": "r1", "fields": {"amount": 3}})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "charged o-1"
    assert first["level"] == "WARNING" and first["logger"] == "tempoflow.test-json"
    assert first["run_id"] == "r1" and first["fields"] == {"amount": 3}
    assert "time" in first
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc_info"]


def test_text_format_and_unknown_format() -> None:
    record = logging.makeLogRecord({"msg": "hi", "levelname": "INFO", "name": "x"})
    assert logs.formatter("text").format(record).endswith("INFO x: hi")
    try:
        logs.formatter("xml")
    except ValueError as err:
        assert "xml" in str(err)
    else:
        raise AssertionError("xml accepted")


def test_processes_log_json_when_asked() -> None:
    """``TEMPOFLOW_LOG_FORMAT=json`` (read by the launcher for api, worker and dev)
    switches the process's own log to JSON; anything else but text is refused."""
    code = (
        "import logging; from launcher import logs; logs.configure_from_env(); "
        "logging.getLogger('tempoflow.x').info('hello', extra={'run_id': 'r'})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "TEMPOFLOW_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello" and line["run_id"] == "r" and line["level"] == "INFO"
    bad = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "migrate"],
        env={**os.environ, "TEMPOFLOW_LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "TEMPOFLOW_LOG_FORMAT must be one of text, json" in bad.stderr

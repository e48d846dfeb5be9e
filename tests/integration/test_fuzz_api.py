"""Schema-driven fuzzing (schemathesis) of the live API over loopback: a real uvicorn
server wired to the real Temporal and PostgreSQL; no answer may be a 5xx, and every
answer must be one the OpenAPI document declares, in the declared shape.

Short by default; ``TEMPOFLOW_FUZZ_EXAMPLES=500`` (examples per operation) runs longer.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from app.main import create_app
from tests.integration.conftest import Stack
from tests.servers import serve_app

EXAMPLES = int(os.environ.get("TEMPOFLOW_FUZZ_EXAMPLES", "15"))
# Fuzzing time budget (seconds) of schemathesis itself; the pytest timeout leaves room.
BUDGET = int(os.environ.get("TEMPOFLOW_FUZZ_SECONDS", str(max(45, EXAMPLES // 2))))
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
    ]
)
ST = Path(sys.executable).with_name("st")


def _only_refused_by_http_parser(text: str) -> bool:
    """Every failure is a request uvicorn's HTTP parser refused before the app saw it
    (400 ``Invalid HTTP request received.`` as text/plain, e.g. a generated query value
    that is not a valid request target): not an answer of the API."""
    if "= FAILURES =" not in text:
        return False
    failures = text.split("= FAILURES =", 1)[1].split("= WARNINGS =", 1)[0]
    cases = re.split(r"\n_{3,} [A-Z]+ \S+ _{3,}\n", failures)[1:]
    return bool(cases) and all("`Invalid HTTP request received.`" in case for case in cases)


def _assert_clean(returncode: int, text: str) -> None:
    """No check failed. Errors are tolerated only when they are the generator's own
    ("Runtime Error", e.g. Hypothesis failing to draw from a pattern); network errors
    (the server refusing or dropping connections) fail the test."""
    if returncode == 0:
        return
    summary = [line for line in text.splitlines() if line.startswith("=") and " in " in line]
    assert summary, text[-20000:]
    if not _only_refused_by_http_parser(text):
        assert not re.search(r"\d+ failures?\b", summary[-1]), text[-20000:]
        assert "\nFailures:" not in text, text[-20000:]
    kinds = set(re.findall(r"🚫 ([A-Za-z ]+?): \d+", text.split("Errors:")[-1]))
    assert kinds <= {"Runtime Error"}, text[-20000:]


@pytest.mark.timeout(BUDGET + 120)
async def test_fuzzing_finds_no_server_error(stack: Stack, tmp_path: Path) -> None:
    await stack.publish("flow", {"steps": [{"id": "a", "type": "state.set", "values": {"x": 1}}]})
    app = create_app(stack.settings, registry=stack.worker_registry, temporal=stack.client)
    async with serve_app(app) as base:
        fuzz = await asyncio.create_subprocess_exec(
            str(ST),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {stack.keys['admin']}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(EXAMPLES),
            "--max-time",
            str(BUDGET),
            "--seed",
            os.environ.get("TEMPOFLOW_FUZZ_SEED", "20261123"),
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--no-color",
            "--exclude-path",
            "/readyz",  # its 503 (a dependency slow or down) is what it is for
            "--exclude-path",
            "/v1/runs:stream",  # a live stream never ends (tests/integration/test_streams.py)
            "--suppress-health-check",
            "all",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        )
        output, _ = await fuzz.communicate()
        text = output.decode(errors="replace")
        _assert_clean(fuzz.returncode, text)

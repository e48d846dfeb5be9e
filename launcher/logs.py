"""The processes' own log: text (default) or one JSON object per line.

``TEMPOFLOW_LOG_FORMAT=json`` uses python-json-logger: each record becomes
``{"time", "level", "logger", "message", ...}`` plus its ``extra`` fields (an action's
``run_id``, ``step`` and ``fields``; Temporal's ``temporal_activity`` /
``temporal_workflow`` details) and ``exc_info`` when there is one.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")


def formatter(kind: str) -> logging.Formatter:
    """The formatter for ``kind`` (``text`` or ``json``)."""
    if kind == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_default=_default,
        )
    if kind == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format {kind!r} is not one of {', '.join(FORMATS)}")


def _default(value: Any) -> Any:
    return str(value)


def configure(kind: str = "text", *, level: int = logging.WARNING) -> None:
    """One stderr handler on the root logger; Tempoflow's, Temporal's and uvicorn's
    loggers at INFO."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(kind))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("tempoflow", "temporalio", "uvicorn"):
        logging.getLogger(name).setLevel(logging.INFO)


def configure_from_env() -> None:
    """``configure`` with ``TEMPOFLOW_LOG_FORMAT`` (exits naming the choices when it is
    neither)."""
    kind = os.environ.get("TEMPOFLOW_LOG_FORMAT", "text").strip().lower() or "text"
    if kind not in FORMATS:
        sys.exit(f"tempoflow: TEMPOFLOW_LOG_FORMAT must be one of {', '.join(FORMATS)}")
    configure(kind)

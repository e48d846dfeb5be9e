"""CPU-bound event work (schemas, correlation expressions, trigger filters) off the
event loop, bounded per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")

_CPU = threading.BoundedSemaphore(4)
"""Threads doing CPU-bound event work (schemas, correlation, trigger filters) at once in
this process: a flood cannot take every thread, nor starve the event loop."""


async def off_loop(work: Callable[[], T]) -> T:
    """Run CPU-bound ``work`` in a worker thread (the event loop stays responsive)."""

    def guarded() -> T:
        with _CPU:
            return work()

    return await anyio.to_thread.run_sync(guarded)

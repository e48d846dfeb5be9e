"""The Temporal client factory shared by the API, the worker and the tests."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from tempoflow.settings import Settings


async def connect_temporal(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """A client with the pydantic data converter (the same on API, worker and tests).

    ``runtime`` carries the SDK's metrics (see ``activities/telemetry.py``); client
    ``interceptors`` (tracing) apply to workers made from the client too.
    """
    return await Client.connect(
        settings.resolved_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        interceptors=interceptors,
    )

"""The Temporal client factory shared by the API, the worker and the tests."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tempoflow.settings import Settings


async def connect_temporal(settings: Settings) -> Client:
    """A client with the pydantic data converter (the same on API, worker and tests)."""
    return await Client.connect(
        settings.resolved_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )

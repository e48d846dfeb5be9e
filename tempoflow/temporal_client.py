"""The Temporal client factory shared by the API (and its dispatcher), the worker and the
tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime

from tempoflow.codec import EncryptionCodec
from tempoflow.settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter, with the AES-GCM payload codec when
    ``TEMPOFLOW_PAYLOAD_KEY`` is set."""
    if settings.payload_key is None:
        return pydantic_data_converter
    codec = EncryptionCodec.from_spec(settings.payload_key.get_secret_value())
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


async def connect_temporal(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """A client with the project's data converter (the same on API, worker and tests).

    ``runtime`` carries the SDK's metrics (see ``activities/telemetry.py``); client
    ``interceptors`` (tracing) apply to workers made from the client too.
    """
    return await Client.connect(
        settings.resolved_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
        interceptors=interceptors,
    )

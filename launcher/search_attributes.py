"""Register Tempoflow's search attributes on a Temporal server (an RPC; the worker's job)."""

from __future__ import annotations

import logging

from temporalio.client import Client

from temporal_workflows.search_attributes import ALL, cli_flags

log = logging.getLogger("tempoflow.worker")


async def ensure_registered(client: Client, namespace: str) -> None:
    """Register the search attributes on a server that lacks them (best effort).

    The dev server gets them at launch; on a managed server the operator may have to
    create them (the worker logs how when it is not allowed to).
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )
    from temporalio.service import RPCError

    kinds = {
        "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    }
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {
            key.name: kinds[key.indexed_value_type.name]
            for key in ALL
            if key.name not in listed.custom_attributes
        }
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
    except RPCError as err:
        log.warning(
            "could not register search attributes %s (%s); create them with "
            "`temporal operator search-attribute create`",
            cli_flags(),
            err.message,
        )

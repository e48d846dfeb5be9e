"""Search attributes that let operators filter runs in the Temporal UI."""

from __future__ import annotations

import logging

from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

log = logging.getLogger("tempoflow.worker")

TENANT = SearchAttributeKey.for_keyword("TempoflowTenant")
DEFINITION_KEY = SearchAttributeKey.for_keyword("TempoflowDefinition")
DEFINITION_VERSION = SearchAttributeKey.for_int("TempoflowDefinitionVersion")

ALL = (TENANT, DEFINITION_KEY, DEFINITION_VERSION)


def for_run(tenant: str, key: str, version: int) -> TypedSearchAttributes:
    """The attributes of one run (filter in the Temporal UI by tenant and definition)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(TENANT, tenant),
            SearchAttributePair(DEFINITION_KEY, key),
            SearchAttributePair(DEFINITION_VERSION, version),
        ]
    )


def cli_flags() -> list[str]:
    """``--search-attribute`` flags for ``temporal server start-dev``."""
    kinds = {"KEYWORD": "Keyword", "INT": "Int"}
    flags = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return flags


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

"""Search attributes that let operators filter runs in the Temporal UI.

Pure keys and values (workflow code sets them on child runs); registering them on a
server is an RPC and lives in ``launcher.search_attributes``.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

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

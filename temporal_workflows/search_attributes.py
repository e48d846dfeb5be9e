"""Search attributes that let operators filter runs in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TENANT = SearchAttributeKey.for_keyword("TempoflowTenant")
DEFINITION_KEY = SearchAttributeKey.for_keyword("TempoflowDefinition")
DEFINITION_VERSION = SearchAttributeKey.for_int("TempoflowDefinitionVersion")

ALL = (TENANT, DEFINITION_KEY, DEFINITION_VERSION)


def cli_flags() -> list[str]:
    """``--search-attribute`` flags for ``temporal server start-dev``."""
    kinds = {"KEYWORD": "Keyword", "INT": "Int"}
    flags = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return flags

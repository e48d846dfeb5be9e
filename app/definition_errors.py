"""The problems every reader of a definition answers for a missing or deleted key."""

from __future__ import annotations

from tempoflow.errors import Gone, NotFound


def definition_not_found(key: str) -> NotFound:
    return NotFound(
        f"definition {key!r} does not exist",
        code="definition_not_found",
        hint="PUT /v1/definitions/{key} creates it",
    )


def definition_deleted(key: str) -> Gone:
    """410: the key was deleted; its versions stay readable for its runs' history."""
    return Gone(
        f"definition {key!r} was deleted; it starts no runs",
        code="definition_deleted",
        hint="GET /v1/definitions/{key}/versions still lists its versions; PUT "
        "/v1/definitions/{key} re-creates the key (version numbers continue)",
    )

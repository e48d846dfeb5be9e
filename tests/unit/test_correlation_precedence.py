"""Correlation precedence: top-level key > payload.correlationKey >
payload.workflowCorrelationKey > the type's derivation > the tenant default > none."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.events.ingress import DerivedKeyInvalid, choose_key
from tempoflow.settings import Settings

PLAIN = Settings(environment="test")
DEFAULTED = Settings(environment="test", default_correlation="payload.tenantOrder")
TYPE_CORR = {"paths": ["/payload/orderId"]}


def view(**payload: Any) -> dict[str, Any]:
    return {"id": "e1", "name": "order.paid", "payload": payload, "occurredAt": None}


def test_top_level_key_wins_over_everything() -> None:
    event = view(correlationKey="p", workflowCorrelationKey="w", orderId="t", tenantOrder="d")
    assert choose_key("top", TYPE_CORR, event, DEFAULTED) == ("top", "explicit")


def test_payload_correlation_key_before_workflow_correlation_key() -> None:
    event = view(correlationKey="p", workflowCorrelationKey="w", orderId="t")
    assert choose_key(None, TYPE_CORR, event, DEFAULTED) == ("p", "explicit")


def test_workflow_correlation_key_counts_as_explicit_before_the_type() -> None:
    event = view(workflowCorrelationKey=42.0, orderId="t", tenantOrder="d")
    assert choose_key(None, TYPE_CORR, event, DEFAULTED) == ("42", "explicit")


def test_a_null_payload_key_is_absent() -> None:
    event = view(correlationKey=None, workflowCorrelationKey="w")
    assert choose_key(None, None, event, PLAIN) == ("w", "explicit")


def test_the_type_derivation_before_the_tenant_default() -> None:
    event = view(orderId="t", tenantOrder="d")
    assert choose_key(None, TYPE_CORR, event, DEFAULTED) == ("t", "derived")


def test_a_type_with_a_correlation_never_falls_back_to_the_default() -> None:
    # The default is for types that have none; a type's own derivation finding nothing
    # leaves the event uncorrelated.
    assert choose_key(None, TYPE_CORR, view(tenantOrder="d"), DEFAULTED) == (None, None)


def test_the_tenant_default_for_types_without_correlation() -> None:
    assert choose_key(None, None, view(tenantOrder=7), DEFAULTED) == ("7", "default")
    assert choose_key(None, None, view(other=1), DEFAULTED) == (None, None)
    assert choose_key(None, None, view(tenantOrder="d"), PLAIN) == (None, None)


def test_a_non_object_payload_has_no_payload_keys() -> None:
    event = {"id": "e1", "name": "n", "payload": ["correlationKey"], "occurredAt": None}
    assert choose_key(None, None, event, PLAIN) == (None, None)


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"correlationKey": True}, "/payload/correlationKey"),
        ({"correlationKey": {"a": 1}}, "/payload/correlationKey"),
        ({"workflowCorrelationKey": ""}, "/payload/workflowCorrelationKey"),
        ({"workflowCorrelationKey": [1]}, "/payload/workflowCorrelationKey"),
    ],
)
def test_payload_keys_are_checked_like_explicit_keys(payload: dict[str, Any], path: str) -> None:
    with pytest.raises(DerivedKeyInvalid) as caught:
        choose_key(None, None, {"payload": payload}, PLAIN)
    assert caught.value.path == path


def test_an_invalid_top_level_key_is_reported_at_correlation_key() -> None:
    with pytest.raises(DerivedKeyInvalid) as caught:
        choose_key(False, None, view(correlationKey="p"), PLAIN)
    assert caught.value.path == "/correlationKey"


def test_the_default_must_be_a_valid_expression() -> None:
    with pytest.raises(ValidationError, match="default_correlation"):
        Settings(environment="test", default_correlation="payload.[")
    assert Settings(environment="test", default_correlation="  ").default_correlation is None

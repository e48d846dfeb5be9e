"""Publish-time check of action inputs: literal parts against the input schema, every error
with its pointer; expressions and secret references are not judged before the run."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tempoflow.definition import validate_definition
from tempoflow.definition.input_check import input_errors


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str
    zip: str = Field(pattern=r"^[0-9]{5}$")


class Card(BaseModel):
    kind: Literal["card"]
    number: str


class Transfer(BaseModel):
    kind: Literal["transfer"]
    iban: str


class Pay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(ge=1)
    currency: Literal["EUR", "USD"]
    to: Address
    tags: list[str] = Field(default_factory=list, max_length=3)
    method: Annotated[Card | Transfer, Field(discriminator="kind")]
    token: str = ""


SCHEMA = Pay.model_json_schema()
EXPR = {"$expr": "payload.x"}
SECRET = {"$secret": "stripe"}
GOOD = {
    "amount": 5,
    "currency": "EUR",
    "to": {"city": "Lyon", "zip": "69001"},
    "method": {"kind": "card", "number": "4242"},
}


def test_a_valid_literal_input_has_no_errors() -> None:
    assert input_errors(SCHEMA, GOOD) == []


def test_every_literal_error_with_its_pointer() -> None:
    bad = {
        "amount": 0,
        "currency": "GBP",
        "to": {"city": 5, "zip": "x", "street": "?"},
        "tags": ["a", "b", "c", 4],
        "method": {"kind": "card", "number": "1"},
        "extra": True,
    }
    found = {(p, k) for p, k, _ in input_errors(SCHEMA, bad)}
    assert found == {
        ("", "additionalProperties"),
        ("/amount", "minimum"),
        ("/currency", "enum"),
        ("/to", "additionalProperties"),
        ("/to/city", "type"),
        ("/to/zip", "pattern"),
        ("/tags", "maxItems"),
        ("/tags/3", "type"),
    }


def test_expressions_and_secrets_are_not_judged() -> None:
    # In place of required properties, of a whole object, a typed, patterned or enum
    # value, an array item, and the discriminator of a union: never a false error.
    data: dict[str, Any] = {
        "amount": EXPR,
        "currency": EXPR,
        "to": {"city": EXPR, "zip": SECRET},
        "tags": ["a", EXPR],
        "method": {"kind": EXPR, "number": "4242"},
        "token": SECRET,
    }
    assert input_errors(SCHEMA, data) == []
    assert input_errors(SCHEMA, {**GOOD, "to": EXPR, "method": SECRET}) == []
    assert input_errors(SCHEMA, EXPR) == []


def test_literal_errors_beside_run_time_values_are_still_found() -> None:
    data = {**GOOD, "amount": EXPR, "currency": "GBP", "to": {"city": EXPR}, "tags": [EXPR, 1]}
    found = {(p, k) for p, k, _ in input_errors(SCHEMA, data)}
    assert found == {("/currency", "enum"), ("/to", "required"), ("/tags/1", "type")}
    # A required property left out is missing whatever the expressions give.
    found = {(p, k) for p, k, _ in input_errors(SCHEMA, {"amount": EXPR})}
    assert ("", "required") in found


def test_publish_validation_reports_input_errors_with_the_others() -> None:
    body = {
        "steps": [
            {
                "id": "a",
                "type": "action.call",
                "action": "acme.pay",
                "input": {**GOOD, "amount": "x"},
            },
            {
                "id": "a",
                "type": "action.call",
                "action": "acme.pay",
                "input": {**GOOD, "amount": EXPR},
            },
            {"id": "c", "type": "action.call", "action": "acme.nope"},
            {"id": "d", "type": "transform.assign", "assign": {"x": "$nope("}},
        ]
    }
    issues = validate_definition(body, ["acme.pay"], {"acme.pay": SCHEMA})
    found = {(i.path, i.code) for i in issues if i.severity == "error"}
    assert ("/steps/0/input/amount", "action.input.type") in found
    assert ("/steps/1/id", "step.duplicate_id") in found
    assert ("/steps/2/action", "action.unknown") in found
    assert any(p.startswith("/steps/3/assign") for p, _ in found)
    assert not any(p.startswith("/steps/1/input") for p, _ in found)
    # Without schemas (the CLI's offline check), inputs are not checked.
    assert not any(
        i.code.startswith("action.input") for i in validate_definition(body, ["acme.pay"])
    )

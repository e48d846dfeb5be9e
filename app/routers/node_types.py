"""The node types of the definition language, each with its configuration's JSON Schema."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import Reader
from app.schemas import NodeTypePublic, NodeTypesPublic
from tempoflow.definition.schema_export import node_types

router = APIRouter(prefix="/v1/node-types", tags=["schemas"])


@router.get("", response_model=NodeTypesPublic)
async def read_node_types(principal: Reader) -> NodeTypesPublic:
    """Every node type: what it does, how each field is read (``jsonata``, ``template``,
    ``steps``, ``target``, ``literal``, ``schema``, ``action``, ``nested``), the extra
    names its fields' expressions see, and the JSON Schema of a step of that type."""
    return NodeTypesPublic(items=[NodeTypePublic.model_validate(n) for n in node_types()])

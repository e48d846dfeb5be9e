"""The definition language: one package for the model and its publish validation, imported
by both the API and the interpreter so they can never disagree."""

from tempoflow.definition.model import (
    MAX_CONCURRENCY,
    NODE_TYPES,
    ActionCall,
    ControlCallWorkflow,
    ControlForEach,
    ControlIf,
    ControlParallel,
    ControlReturn,
    ControlSwitch,
    ControlTryCatch,
    Definition,
    Delay,
    StateSet,
    TransformAssign,
    parse_definition,
    walk_steps,
)
from tempoflow.definition.validation import Issue, content_hash, validate_definition

__all__ = [
    "MAX_CONCURRENCY",
    "NODE_TYPES",
    "ActionCall",
    "ControlCallWorkflow",
    "ControlForEach",
    "ControlIf",
    "ControlParallel",
    "ControlReturn",
    "ControlSwitch",
    "ControlTryCatch",
    "Definition",
    "Delay",
    "Issue",
    "StateSet",
    "TransformAssign",
    "content_hash",
    "parse_definition",
    "validate_definition",
    "walk_steps",
]

"""The scenario file format (``*.scenario.json``): what to run, what to mock, what to send,
what to expect. ``docs/testing.md`` documents it with examples."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tempoflow.jsonpointer import join

SUFFIXES = (".scenario.json", ".scenario.yaml", ".scenario.yml")
"""Scenario files: JSON, or YAML (the same document; timestamps stay strings)."""
RUN_STATUSES = ("SUCCEEDED", "FAILED", "CANCELED", "WAITING", "RUNNING")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MockError(_Model):
    """An attempt that fails the way an action's handler does (``ActionError``)."""

    type: str = Field(default="ActionError", min_length=1)
    message: str = "mocked failure"
    retryable: bool = True
    """``false``: Temporal does not retry (the step fails at once)."""
    details: Any = None


class MockCall(_Model):
    """One call's result: ``output`` (success) or ``error`` (a failed attempt).

    With ``when`` it answers every call whose input has those fields with those values
    (concurrent calls, e.g. in a loop, then get the right answer whatever their order);
    without it, entries answer calls in order (one each)."""

    when: dict[str, Any] | None = None
    output: Any = None
    error: MockError | None = None

    @model_validator(mode="after")
    def _one(self) -> MockCall:
        if self.error is not None and "output" in self.model_fields_set:
            raise ValueError("a mocked call has 'output' or 'error', not both")
        return self


class SendEvent(_Model):
    """An event as the router signals it to the run (``tempoflow.event``)."""

    name: str = Field(min_length=1)
    correlationKey: str | int | None = None
    payload: Any = None
    id: str | None = None
    """Default: a fresh id per event (a repeated id is applied once, as in production)."""


class CompleteTask(_Model):
    """Complete the open human task of step ``step`` (its id) through the update the API
    uses; ``rejected``: the error type the completion must be refused with instead."""

    step: str = Field(min_length=1)
    data: Any = None
    completedBy: str = "scenario"
    rejected: str | None = None


class Cancel(_Model):
    reason: str | None = None


class DriveItem(_Model):
    """One thing to do while the run is open, in order: exactly one field."""

    advance: timedelta | None = None
    """Move the test server's clock forward (timers and timeouts due meanwhile fire)."""
    event: SendEvent | None = None
    completeTask: CompleteTask | None = None
    cancel: Cancel | None = None

    @model_validator(mode="after")
    def _one(self) -> DriveItem:
        given = [
            k for k in ("advance", "event", "completeTask", "cancel") if k in self.model_fields_set
        ]
        if len(given) != 1:
            raise ValueError(
                "each item has exactly one of 'advance', 'event', 'completeTask', 'cancel'"
            )
        return self


class Trigger(_Model):
    """Start the run the way a trigger of the definition would (exactly one kind)."""

    schedule: str | None = None
    """A schedule trigger's name: its ``input``, and ``trigger: {"schedule": name}``."""
    webhook: str | None = None
    """A webhook trigger's name: its ``input`` mapping over ``body`` and ``headers``."""
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    event: SendEvent | None = None
    """An event trigger: the run input is the event as expressions see it."""

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        kinds = [k for k in ("schedule", "webhook", "event") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a trigger has exactly one of 'schedule', 'webhook', 'event'")
        return self


class StepExpectation(_Model):
    """What a step's record must show (only the fields given are compared)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: Literal["SUCCEEDED", "FAILED", "CANCELED", "RUNNING"] | None = None
    output: Any = None
    input: Any = None
    attempt: int | None = None
    error: dict[str, Any] | None = None
    """Compared field by field: ``{"type": "HttpError"}`` ignores the message."""


class Expectations(_Model):
    status: Literal["SUCCEEDED", "FAILED", "CANCELED", "WAITING", "RUNNING"] | None = None
    output: Any = None
    """The run's output, compared exactly."""
    error: dict[str, Any] | None = None
    """A failed run's error (``type``, ``message``, ``stepPath``, ``details``): only
    the fields given are compared."""
    variables: dict[str, Any] | None = None
    """Variables at the end: each one named is compared exactly; others are ignored."""
    steps: dict[str, StepExpectation | list[StepExpectation] | None] | None = None
    """By step id: an object (the step's last record), a list (every record of the step,
    in order, e.g. one per loop iteration), or ``null`` (the step never ran)."""
    calls: dict[str, list[Any]] | None = None
    """By action name: the inputs the run sent, one per attempt, in order (exactly)."""
    notifications: list[dict[str, Any]] | None = None
    """The notifications the ``notify`` policies sent, in order: each compared on the
    fields given (``on``, ``channel``, ``step``, ``to``, ``template``)."""


class Scenario(_Model):
    name: str = Field(min_length=1, max_length=200)
    input: Any = None
    inputFile: str | None = None
    """A JSON file (relative to the scenario file) holding the input."""
    trigger: Trigger | None = None
    mocks: dict[str, MockCall | list[MockCall]] = Field(default_factory=dict)
    """By action name: one result for every call, or a list: one per call (attempt) in
    order; a call beyond the list fails the scenario as unmocked."""
    drive: list[DriveItem] = Field(default_factory=list)
    expect: Expectations = Field(default_factory=Expectations)
    timeout: float = Field(default=30.0, gt=0, le=600)
    """Real seconds the run may take (the test server skips its timers meanwhile)."""

    @model_validator(mode="after")
    def _input(self) -> Scenario:
        given = sum(
            (
                1 if "input" in self.model_fields_set else 0,
                1 if self.inputFile is not None else 0,
                1 if self.trigger is not None else 0,
            )
        )
        if given > 1:
            raise ValueError("give at most one of 'input', 'inputFile' and 'trigger'")
        return self


class ScenarioFile(_Model):
    definition: str | None = None
    """The definition file, relative to this file (default: ``<name>.json`` for
    ``<name>.scenario.json``). Child definitions (``control.callWorkflow``) are the files
    ``<key>.json`` beside it."""
    scenarios: list[Scenario] = Field(min_length=1, max_length=500)


class ScenarioFileError(Exception):
    """A scenario file (or what it refers to) cannot be used: ``problems`` lists where."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


class Loaded(BaseModel):
    """A scenario file with its definition read."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: Path
    spec: ScenarioFile
    definition_path: Path
    definition: dict[str, Any]

    @property
    def key(self) -> str:
        return self.definition_path.stem


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ScenarioFileError(path, [f"cannot read: {err.strerror or err}"]) from None
    except ValueError as err:
        raise ScenarioFileError(path, [f"not JSON: {err}"]) from None


class _YamlLoader(yaml.SafeLoader):
    """YAML's safe loader without its timestamp type: ``2026-01-01`` stays a string, as
    in JSON (durations and times are strings throughout the format)."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_scenarios(path: Path) -> Any:
    if path.name.endswith(".json"):
        return read_json(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
    except OSError as err:
        raise ScenarioFileError(path, [f"cannot read: {err.strerror or err}"]) from None
    except yaml.YAMLError as err:
        raise ScenarioFileError(path, [f"not YAML: {err}"]) from None


def _stem(path: Path) -> str:
    return next(path.name.removesuffix(s) for s in SUFFIXES if path.name.endswith(s))


def load(path: Path) -> Loaded:
    """Read and check a scenario file; every problem with its JSON pointer."""
    raw = read_scenarios(path)
    try:
        spec = ScenarioFile.model_validate(raw)
    except ValidationError as err:
        problems = [
            f"{join(e['loc']) or '/'}: {e['msg']}"
            for e in err.errors(include_url=False, include_context=False)
        ]
        raise ScenarioFileError(path, problems) from None
    name = _stem(path)
    definition_path = path.parent / (spec.definition or f"{name}.json")
    definition = read_json(definition_path)
    if not isinstance(definition, dict):
        raise ScenarioFileError(definition_path, ["a definition is a JSON object"])
    return Loaded(path=path, spec=spec, definition_path=definition_path, definition=definition)


def discover(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Scenario files named by ``paths``: files as given (a definition ``X.json`` stands
    for ``X.scenario.json`` or ``.yaml``/``.yml`` beside it), directories searched
    recursively. Returns the files and the paths that named none."""
    found: list[Path] = []
    missing: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(
                p
                for suffix in SUFFIXES
                for p in path.rglob(f"*{suffix}")
                if not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.name.endswith(SUFFIXES) and path.is_file():
            files = [path]
        elif path.suffix == ".json":
            files = [
                path.with_name(path.stem + s)
                for s in SUFFIXES
                if path.with_name(path.stem + s).is_file()
            ]
        else:
            files = []
        if not files:
            missing.append(given)
        for file in files:
            if file not in found:
                found.append(file)
    return found, missing

"""Redaction: a definition's ``redact`` JSON pointers, applied to the records of its runs.

Pure code, used by the interpreter (records are masked before they leave the workflow),
the action activity (the step input it projects) and the API (invocation outputs and
event payloads). A pointer's first token names what it applies to:

- ``/payload/…``: the run's input, and the payload of every event delivered to the run
  (the event a waiting step took, in its output; the inbox event in API views);
- ``/vars/…``: a variable, wherever a step records the value it assigns (the step's
  output, e.g. an action's ``output`` target, or the values a step sets) and in the run's
  output when the definition has no ``output`` mapping (the output is then ``vars``);
- ``/input/…``: every step's input (an action's input, a child run's input);
- ``/output/…``: every step's output and the run's output.

``*`` matches any object key or array index. A masked value becomes ``"[redacted]"``;
pointers that match nothing change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

REDACTED = "[redacted]"
ROOTS = ("payload", "vars", "input", "output")
POINTER = r"^/(payload|vars|input|output)(/([^/~]|~[01])*)*$"
MAX_POINTERS = 100
MAX_POINTER_LENGTH = 512
WILDCARD = "*"
_POINTER = re.compile(POINTER)

Tokens = tuple[str, ...]


def tokens(pointer: str) -> Tokens:
    """The unescaped reference tokens of a JSON pointer."""
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def target_tokens(target: str) -> Tokens:
    """Tokens of a variable target: a dot path (``a.b``) or a JSON pointer (``/a/b``)."""
    return tokens(target) if target.startswith("/") else tuple(target.split("."))


def is_pointer(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) <= MAX_POINTER_LENGTH and bool(_POINTER.match(value))
    )


def _matches(pattern: Sequence[str], path: Sequence[str]) -> bool:
    return len(pattern) == len(path) and all(
        p == WILDCARD or p == t for p, t in zip(pattern, path, strict=True)
    )


def mask(value: Any, patterns: Iterable[Sequence[str]]) -> Any:
    """``value`` with every location one of ``patterns`` (token sequences, ``*`` for any
    key or index) matches replaced by ``REDACTED``. Unchanged parts are shared, not
    copied; ``value`` itself is never modified."""
    patterns = [tuple(p) for p in patterns]
    if not patterns:
        return value
    if any(not p for p in patterns):
        return REDACTED if value is not None else None
    if isinstance(value, dict):
        out: dict[str, Any] | None = None
        for key, item in value.items():
            rest = [p[1:] for p in patterns if p[0] in (WILDCARD, key)]
            if rest:
                masked = mask(item, rest)
                if masked is not item:
                    out = dict(value) if out is None else out
                    out[key] = masked
        return value if out is None else out
    if isinstance(value, list):
        items: list[Any] | None = None
        for index, item in enumerate(value):
            rest = [p[1:] for p in patterns if p[0] in (WILDCARD, str(index))]
            if rest:
                masked = mask(item, rest)
                if masked is not item:
                    items = list(value) if items is None else items
                    items[index] = masked
        return value if items is None else items
    return value


class Redaction:
    """The compiled ``redact`` pointers of one definition.

    Args:
        pointers: the definition's ``redact`` list (validated at publish time; entries
            that are not valid pointers are ignored here).
        output_is_vars: the definition has no ``output`` mapping, so the run's output is
            its variables and ``/vars`` pointers apply to it too.
    """

    def __init__(self, pointers: Iterable[str] = (), *, output_is_vars: bool = False) -> None:
        by_root: dict[str, list[Tokens]] = {root: [] for root in ROOTS}
        for pointer in pointers:
            if is_pointer(pointer):
                root, *rest = tokens(pointer)
                by_root[root].append(tuple(rest))
        self._by_root = by_root
        self.output_is_vars = output_is_vars

    @classmethod
    def of_definition(cls, body: Any) -> Redaction:
        """From a raw (published) definition body."""
        if not isinstance(body, dict):
            return cls()
        pointers = body.get("redact")
        return cls(
            pointers if isinstance(pointers, list) else (),
            output_is_vars=body.get("output") is None,
        )

    def __bool__(self) -> bool:
        return any(self._by_root.values())

    def payload(self, value: Any) -> Any:
        """The run's input, or the payload of an event delivered to the run."""
        return mask(value, self._by_root["payload"])

    def event(self, event: Any) -> Any:
        """An event as the run sees it (``{"payload": …, …}``)."""
        return mask(event, [("payload", *p) for p in self._by_root["payload"]])

    def run_output(self, value: Any) -> Any:
        value = mask(value, self._by_root["output"])
        if self.output_is_vars:
            value = mask(value, self._by_root["vars"])
        return value

    def step_input(self, value: Any) -> Any:
        return mask(value, self._by_root["input"])

    def variable(self, target: str, value: Any) -> Any:
        """The value a step assigns to ``target``, masked by the ``/vars`` pointers."""
        path = target_tokens(target)
        patterns = []
        for pattern in self._by_root["vars"]:
            if len(pattern) <= len(path):
                if _matches(pattern, path[: len(pattern)]):
                    return REDACTED if value is not None else None
            elif _matches(pattern[: len(path)], path):
                patterns.append(pattern[len(path) :])
        return mask(value, patterns)

    def step_output(
        self, value: Any, *, target: Any = None, keyed: bool = False, event: bool = False
    ) -> Any:
        """A step's output: ``/output`` pointers, then ``/vars`` pointers for what the step
        assigns (its ``output`` ``target``, or with ``keyed`` each value of an output
        keyed by target, as steps setting variables record), then, for an ``event`` step, the
        ``/payload`` pointers on the event it took."""
        if not self:
            return value
        value = mask(value, self._by_root["output"])
        if keyed and isinstance(value, dict):
            value = {k: self.variable(k, v) for k, v in value.items()}
        elif isinstance(target, str) and target:
            value = self.variable(target, value)
        if event:
            value = self.event(value)
        return value

"""Secret references: ``{"$secret": "name"}`` anywhere inside an action's input.

Only the reference travels through the workflow (history and projections hold the
object, never the value); the action activity replaces it with the secret's value just
before the handler runs and masks the value in everything the attempt produces.
Pure code: the publish validation, the activity and the API share it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from tempoflow.jsonpointer import escape

SECRET_KEY = "$secret"
SECRET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MIN_SECRET_LENGTH = 4
"""Shortest secret value: every occurrence of a resolved value is masked in the action's
output, errors and logs, and masking a one- or two-character value would mangle them."""
MAX_SECRET_LENGTH = 65_536
MAX_SECRETS_PER_TENANT = 1000
_NAME = re.compile(SECRET_NAME)


def is_reference(value: Any) -> bool:
    """True for an object whose only key is ``$secret``."""
    return isinstance(value, dict) and len(value) == 1 and SECRET_KEY in value


def is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(_NAME.match(value))


def iter_references(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(json_pointer, name)`` for every reference inside ``value`` (``name`` as
    written: normally a string)."""
    if is_reference(value):
        yield path, value[SECRET_KEY]
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_references(item, f"{path}/{escape(key)}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_references(item, f"{path}/{index}")


def substitute(value: Any, values: Mapping[str, str]) -> Any:
    """``value`` with every reference replaced by its secret's value (a copy where it
    changes; the rest is shared)."""
    if is_reference(value):
        return values[value[SECRET_KEY]]
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    return value


def marker(name: str) -> str:
    """What replaces a resolved value wherever it would show."""
    return f"[secret:{name}]"


class Masker:
    """Replaces resolved secret values inside strings (and nested JSON) with markers.

    Besides each value itself it masks the forms the value takes when quoted by
    ``repr`` or JSON (escaped newlines, quotes, backslashes), longest first.
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        forms: dict[str, str] = {}
        for name, value in values.items():
            for form in (value, json.dumps(value)[1:-1], repr(value)[1:-1]):
                if form:
                    forms.setdefault(form, marker(name))
        self._forms = sorted(forms.items(), key=lambda item: -len(item[0]))
        self._pattern = (
            re.compile("|".join(re.escape(form) for form, _ in self._forms))
            if self._forms
            else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        forms = dict(self._forms)
        return self._pattern.sub(lambda m: forms[m.group(0)], text)

    def value(self, value: Any) -> Any:
        """JSON-like ``value`` with every string (keys too) masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def contains(self, text: str) -> bool:
        return self._pattern is not None and self._pattern.search(text) is not None

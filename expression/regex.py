"""Regular expressions through RE2 (linear time: no pattern backtracks catastrophically),
with the work of every call charged to the evaluation's step budget."""

from __future__ import annotations

import re as _re
from collections.abc import Callable
from typing import Any

import re2
from jsonata.regex_engine import RegexFlags

from expression.functions import FunctionFailure
from expression.metered import MATCH_COST, SCAN_CHARS, charge

_GROUP_REF = _re.compile(r"\\g<(\d+)>")


class Re2Pattern:
    """An RE2 pattern with ``re``'s behaviour where jsonata-python depends on it.

    jsonata-python turns ``$1`` in a replacement into ``\\g<1>`` and recovers from
    references to missing groups by parsing ``re``'s error message; RE2's own template
    expansion fails differently, so templates are expanded here (the rest of the
    replacement string is literal, as in JSONata).
    """

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compiled, name)

    # Every match costs Python objects: charged to the evaluation's step budget as it
    # goes (metered evaluations only), so no call runs on unseen.
    def finditer(self, string: str) -> Any:
        charge(1 + len(string) // SCAN_CHARS)
        for match in self._compiled.finditer(string):
            charge(MATCH_COST)
            yield match

    def search(self, string: str, *args: Any) -> Any:
        charge(1 + len(string) // SCAN_CHARS)
        return self._compiled.search(string, *args)

    def split(self, string: str, maxsplit: int = 0) -> list[str]:
        for _ in self.finditer(string):  # counts (and charges) the pieces first
            pass
        return list(self._compiled.split(string, maxsplit))

    def sub(self, repl: Any, string: str, count: int = 0) -> str:
        charge(1 + len(string) // SCAN_CHARS)
        if isinstance(repl, str):
            repl = self._template(repl)
        inner = repl

        def metered(match: Any) -> Any:
            charge(MATCH_COST)
            return inner(match)

        return str(self._compiled.sub(metered, string, count))

    def _template(self, template: str) -> Callable[[Any], str]:
        groups = self._compiled.groups
        parts: list[str | int] = []
        last = 0
        for ref in _GROUP_REF.finditer(template):
            number = int(ref.group(1))
            if number > groups:
                raise _re.error(f"invalid group reference {number}", template, ref.start())
            parts += [template[last : ref.start()], number]
            last = ref.end()
        parts.append(template[last:])
        return lambda m: "".join(p if isinstance(p, str) else (m.group(p) or "") for p in parts)


def re2_engine(pattern: str, flags: RegexFlags) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not flags.case_insensitive
    options.never_nl = False
    prefix = "(?m)" if flags.multiline else ""
    try:
        return Re2Pattern(re2.compile(prefix + pattern, options))
    except re2.error as err:
        failure = FunctionFailure(
            "TF1201",
            f"regular expression /{pattern}/ is not supported: {err} "
            "(RE2 syntax: no lookaround or backreferences)",
        )
        failure.pattern = pattern
        raise failure from None


def regex_position(expression: str, pattern: str) -> int | None:
    """Offset just past the regex literal ``/pattern/`` (JSONata positions point past the
    token), found in the text: the parser does not say where it was."""
    start = expression.find(f"/{pattern}/")
    return None if start < 0 else start + len(pattern) + 2

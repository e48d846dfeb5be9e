"""Human output of the API commands: tables on stdout, progress on stderr.

Written here rather than with ``rich``: two small functions cover what the commands
print, and installing ``rich`` (with ``pygments``, which it requires) makes every
``import httpx`` also load httpx's own command-line module (``httpx/__init__.py`` imports
``httpx._main`` when ``click``, ``rich`` and ``pygments`` are all installed), about 45 ms
more for the API, the worker and every CLI call, measured with ``python -X importtime``.
A progress line appears only when stderr is a terminal (a CI log gets no carriage
returns) and never with ``--json``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any


def cell(value: Any) -> str:
    """A table cell: empty for ``None``, times without their fraction of a second."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if len(text) > 19 and text[4:5] == "-" and text[10:11] == "T":
        date, _, clock = text.partition("T")
        return f"{date} {clock[:8]}"
    return text.replace("\n", " ")


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows under their column names, each column as wide as its widest cell."""
    cells = [list(columns), *([cell(v) for v in row] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """Print ``name  value`` lines, aligned (``None`` values left out)."""
    shown = [(name, cell(value)) for name, value in pairs if value is not None]
    width = max((len(name) for name, _ in shown), default=0)
    for name, value in shown:
        print(f"{name.ljust(width)}  {value}".rstrip())


class Progress:
    """A progress line on stderr (or nothing): ``advance()`` per item done."""

    def __init__(self, label: str, total: int | None, shown: bool) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.shown = shown

    def advance(self, what: str | None = None) -> None:
        self.done += 1
        if self.shown:
            of = f"/{self.total}" if self.total is not None else ""
            line = f"{self.label} {self.done}{of}" + (f" {what}" if what else "")
            sys.stderr.write("\r\033[K" + line[:120])
            sys.stderr.flush()


@contextlib.contextmanager
def progress(label: str, total: int | None, *, enabled: bool) -> Iterator[Progress]:
    """Progress of long work (``total`` unknown: a counter); shown only when ``enabled``
    and stderr is a terminal, and erased at the end."""
    bar = Progress(label, total, enabled and sys.stderr.isatty())
    try:
        yield bar
    finally:
        if bar.shown and bar.done:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

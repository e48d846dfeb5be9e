"""Human output of the API commands: tables on stdout, progress bars on stderr.

``rich`` draws them; it is imported only when a command prints (about 45 ms), so
``tempoflow --help`` and ``--json`` never pay for it. Progress bars appear only when
stderr is a terminal (a CI log gets no animation frames) and never with ``--json``.
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
    return text


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """Print rows as a table (plain columns when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    grid = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        grid.add_row(*(cell(v) for v in row))
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(grid)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """Print ``name: value`` lines, aligned."""
    table(["field", "value"], [(name, value) for name, value in pairs if value is not None])


class Progress:
    """A progress bar on stderr (or nothing): ``advance()`` per item, ``total`` optional."""

    def __init__(self, bar: Any, task: Any) -> None:
        self._bar = bar
        self._task = task

    def advance(self, description: str | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=description)


@contextlib.contextmanager
def progress(label: str, total: int | None, *, enabled: bool) -> Iterator[Progress]:
    """A bar for long work (``total`` unknown: a counter); off unless ``enabled`` and
    stderr is a terminal."""
    if not (enabled and sys.stderr.isatty()):
        yield Progress(None, None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bar

    with Bar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        yield Progress(bar, bar.add_task(label, total=total))

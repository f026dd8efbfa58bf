"""Tables that stay readable at 80 columns and in a pipe (every edge-* command's lists).

A rich table squeezed into a narrow terminal cuts every cell to "…".  :func:`print_rows`
prints the table when it fits the console's width, and otherwise stacks each row: its
first cell as a heading, then one ``column  value`` line per other cell, wrapped at the
width.  Nothing is cut, and a pipe (width 80 unless ``COLUMNS`` says otherwise) gets the
same text.  Needs rich (the ``cli`` extra, through typer); imported only when drawing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def print_rows(
    console: Console,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[str] = (),
) -> None:
    """The rows (rich markup allowed in cells) as a table, or stacked when it would not fit."""
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for name in headers:
        table.add_column(name, justify="right" if name in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    unbounded = console.options.update(max_width=10_000)  # the table's natural width, not the console's
    if Measurement.get(console, unbounded, table).maximum <= console.width:
        console.print(table)
        return
    console.print(f"[bold]{title}[/]")
    label = max(len(h) for h in headers[1:]) if len(headers) > 1 else 0
    indent = 2 + label + 2
    for row in rows:
        console.print(f"[bold]{row[0]}[/]")
        for name, cell in zip(headers[1:], row[1:], strict=True):
            if not cell:
                continue
            lines = Text.from_markup(cell).wrap(console, max(20, console.width - indent))
            for i, line in enumerate(lines):
                lead = Text(f"  {name:<{label}}  ", style="dim") if i == 0 else Text(" " * indent)
                line.rstrip()
                console.print(Text.assemble(lead, line), soft_wrap=True)

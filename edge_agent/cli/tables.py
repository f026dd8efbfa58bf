"""Tables that stay readable at 80 columns and in a pipe: ``edge_protocol.cli_tables``
(shared with the cloud's commands) on this command's console."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from edge_agent.cli.common import console
from edge_protocol import cli_tables


def print_rows(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[str] = (),
) -> None:
    """The rows (rich markup allowed in cells) as a table, or stacked when it would not fit."""
    cli_tables.print_rows(console, title, headers, rows, right=right)

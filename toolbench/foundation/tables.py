"""Tables, drawn one way: every Markdown table (summary.md, grid.md, leaderboard.md, report.md,
ablation.md, the console's Markdown) comes from `markdown_table`, every console table from
`rich_table`, so a header, a cell or an alignment is written once, by the code that knows it.

A Markdown table here is GitHub's pipe table, unpadded: `| a | b |`, then `|---|---:|` (a column
right-aligned with `---:`), then one line per row. A `|` inside a cell is escaped and a line break
becomes a space, so no cell can break the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rich.table import Table

Align = Literal["left", "right"]


def alignments(align: Align | Sequence[Align], columns: int) -> list[Align]:
    """One alignment per column: `align` for all of them, or one each (checked: a table whose
    alignments miss a column would silently misalign it)."""
    if isinstance(align, str):
        return [align] * columns
    if len(align) != columns:
        raise ValueError(f"{len(align)} alignments for {columns} columns")
    return list(align)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: Align | Sequence[Align] = "left"
) -> str:
    """The table as Markdown lines (no trailing newline)."""
    rules = {"left": "---|", "right": "---:|"}
    lines = [
        "| " + " | ".join(map(_cell, header)) + " |",
        "|" + "".join(rules[a] for a in alignments(align, len(header))),
    ]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(header)} columns")
        lines.append("| " + " | ".join(map(_cell, row)) + " |")
    return "\n".join(lines)


def rich_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: Align | Sequence[Align] = "left",
    *,
    title: str | None = None,
    no_wrap_first: bool = False,
    show_lines: bool = False,
) -> Table:
    """The same table for the console (rich). `no_wrap_first` keeps the first column (the row's
    name) on one line when the terminal is narrow; `show_lines` rules between rows, for cells of
    several lines."""
    from rich.table import Table

    table = Table(title=title, show_lines=show_lines)
    for i, (name, side) in enumerate(zip(header, alignments(align, len(header)), strict=True)):
        table.add_column(name, justify=side, no_wrap=no_wrap_first and i == 0)
    for row in rows:
        table.add_row(*row)
    return table

"""The one table renderer (`toolbench.foundation.tables`): the exact Markdown every summary.md, grid.md,
leaderboard.md and report.md is made of, and the same table on the console."""

from __future__ import annotations

import pytest
from rich.console import Console

from toolbench.foundation.tables import alignments, markdown_table, rich_table


def test_markdown_table_is_an_unpadded_pipe_table():
    text = markdown_table(["tool", "n", "success %"], [["weather", "30", "100.0"], ["macro", "30", "96.7"]])
    assert text == (
        "| tool | n | success % |\n|---|---|---|\n| weather | 30 | 100.0 |\n| macro | 30 | 96.7 |"
    )


def test_alignment_per_column_or_for_all():
    assert markdown_table(["a", "b"], [["x", "1"]], ["left", "right"]).splitlines()[1] == "|---|---:|"
    assert markdown_table(["a", "b"], [], "right") == "| a | b |\n|---:|---:|"
    assert alignments("left", 3) == ["left", "left", "left"]
    with pytest.raises(ValueError, match="1 alignments for 2 columns"):
        markdown_table(["a", "b"], [], ["right"])


def test_a_cell_cannot_break_the_table():
    text = markdown_table(["a|b"], [["one | two"], ["line\nbreak"]])
    assert text.splitlines() == ["| a\\|b |", "|---|", "| one \\| two |", "| line break |"]
    with pytest.raises(ValueError, match="a row of 1 cells in a table of 2 columns"):
        markdown_table(["a", "b"], [["x"]])


def test_rich_table_has_the_same_cells_alignment_and_title():
    table = rich_table(
        ["tool", "count"], [["weather", "7"]], ["left", "right"], title="runs", no_wrap_first=True
    )
    assert [c.header for c in table.columns] == ["tool", "count"]
    assert [c.justify for c in table.columns] == ["left", "right"]
    assert [c.no_wrap for c in table.columns] == [True, False] and table.title == "runs"
    console = Console(width=40, record=True, color_system=None)
    console.print(table)
    lines = console.export_text().splitlines()
    assert lines[0].strip() == "runs"
    assert lines[4] == "│ weather │     7 │"  # the count right-aligned under its header
    assert not rich_table(["a"], [["x"]]).columns[0].no_wrap and not rich_table(["a"], []).show_lines

"""spreadsheet: a Google Sheets-like sheet, after ToolBench's Google Sheets API, fully simulated.

A task opens one of the shipped tables (`tables.json`) through its setup, `{"table": "grades"}`;
row 1 is the header. Cells are addressed in A1 notation ("B3", "A1:C5", whole columns "B:D",
whole rows "1:1"); a reference outside the table is an error, as is a range that runs backwards.
A value that starts with "=" is a formula (see `formula.py`); every change re-evaluates them, and
inserting or deleting rows or columns moves their references as Sheets does.

State compared by the scorer (every part keyed by cell address, so order lives in the keys):
- `cells`: every cell of the table with its shown value (formulas evaluated; empty cells null),
  so the table's size and each value are compared cell by cell.
- `formulas`: the canonical text of each formula cell (upper case, no spaces).
- `formats`: the non-default format attributes of each formatted cell.
- `reads`: one whole element per `get_values` call (range and the values seen then), so a read
  is only right if it asked for the right cells at the right moment.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from toolbench.core.simulator import Simulator, function
from toolbench.foundation.errors import ToolError, UserError
from toolbench.foundation.records import Call
from toolbench.tools.spreadsheet import formula as fx

MAX_ROWS = 1000
MAX_COLUMNS = 26


def _load_tables() -> dict[str, tuple[tuple[Any, ...], ...]]:
    with (Path(__file__).parent / "tables.json").open(encoding="utf-8") as handle:
        data = json.load(handle)
    return {name: tuple(tuple(row) for row in rows) for name, rows in data.items()}


TABLES = _load_tables()
for _name, _rows in TABLES.items():
    if (
        any(type(v) is str and v.startswith("=") for row in _rows for v in row)
        or len({len(row) for row in _rows}) != 1
    ):
        raise ValueError(f"tables.json: table {_name!r} must be rectangular and hold no formulas")
TABLE_NAMES: tuple[str, ...] = tuple(TABLES)

# One `type` list rather than pydantic's anyOf: the same meaning, and jsonschema checks it in a
# single step (rows of values are validated cell by cell on every call).
CellValue = Annotated[str | float | None, WithJsonSchema({"type": ["string", "number", "null"]})]
Values = Annotated[list[CellValue], Field(min_length=1)]
NumberFormat = Literal["automatic", "number", "currency", "percent", "date", "text"]
Color = Literal["white", "yellow", "green", "blue", "red", "orange", "gray"]
FORMAT_DEFAULTS: dict[str, Any] = {
    "bold": False,
    "italic": False,
    "number_format": "automatic",
    "background": "white",
}
_LETTERS = [fx.column_letters(i) for i in range(MAX_COLUMNS)]
_ROW_NAMES: list[list[str]] = []


def _names(row: int) -> list[str]:
    """Cell names of a 0-based row ("A3", "B3", ...), built once per row number."""
    while len(_ROW_NAMES) <= row:
        number = len(_ROW_NAMES) + 1
        _ROW_NAMES.append([f"{letters}{number}" for letters in _LETTERS])
    return _ROW_NAMES[row]


_GRIDS: dict[tuple[int, int], list[str]] = {}


def _grid_names(height: int, width: int) -> list[str]:
    """Cell names of a whole table in row-major order, built once per table size."""
    names = _GRIDS.get((height, width))
    if names is None:
        names = _GRIDS[(height, width)] = [name for r in range(height) for name in _names(r)[:width]]
    return names


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)", re.ASCII)
_PART = re.compile(r"([A-Za-z]{0,3})(\d{0,7})", re.ASCII)


@lru_cache(maxsize=4096)
def _parse_a1(text: str) -> tuple[str, str | None, tuple[int | None, ...]]:
    """A1 text -> (kind, sheet, corners) with 0-based indexes, kinds "cells" (c1, r1, c2, r2),
    "columns" (c1, c2) and "rows" (r1, r2). Raises ToolError for malformed text."""
    body = text.strip()
    sheet = None
    if "!" in body:
        sheet, _, body = body.rpartition("!")
        sheet = sheet.strip().strip("'")
    parts = body.split(":")
    if len(parts) > 2 or not all(parts):
        raise ToolError("spreadsheet:range", f"{text!r} is not A1 notation (e.g. B3, A1:C5, B:B, 1:1)")
    corners: list[tuple[int | None, int | None]] = []
    for part in parts:
        match = _PART.fullmatch(part.strip())
        if match is None or not part.strip():
            raise ToolError("spreadsheet:range", f"{text!r} is not A1 notation (e.g. B3, A1:C5, B:B, 1:1)")
        letters, digits = match.groups()
        if digits and int(digits) == 0:
            raise ToolError("spreadsheet:range", f"{text!r}: rows are numbered from 1")
        corners.append((fx.column_index(letters) if letters else None, int(digits) - 1 if digits else None))
    if len(corners) == 1:
        (col, row) = corners[0]
        if col is None or row is None:
            raise ToolError("spreadsheet:range", f"{text!r}: a single cell needs a column and a row, e.g. B3")
        return "cells", sheet, (col, row, col, row)
    (c1, r1), (c2, r2) = corners
    if None not in (c1, r1, c2, r2):
        return "cells", sheet, (c1, r1, c2, r2)
    if r1 is None and r2 is None:
        return "columns", sheet, (c1, c2)
    if c1 is None and c2 is None:
        return "rows", sheet, (r1, r2)
    raise ToolError("spreadsheet:range", f"{text!r}: mix of cell and whole-row/column corners")


def _cell_name(row: int, col: int) -> str:
    return _names(row)[col] if col < MAX_COLUMNS else f"{fx.column_letters(col)}{row + 1}"


def _range_name(r1: int, c1: int, r2: int, c2: int) -> str:
    first = _cell_name(r1, c1)
    return first if (r1, c1) == (r2, c2) else f"{first}:{_cell_name(r2, c2)}"


class Formula:
    """A formula cell's content: its tree and canonical text (immutable; moving references
    makes a new one)."""

    __slots__ = ("node", "text")

    def __init__(self, node: fx.Node):
        self.node = node
        self.text = "=" + fx.render(node)

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if type(value) in (int, float) else (1, str(value).casefold())


class Spreadsheet(Simulator):
    name = "spreadsheet"
    description = (
        "A Google Sheets-like spreadsheet: read and edit cells in A1 notation, add, insert and delete "
        "rows and columns, sort, format, and write formulas (SUM, AVERAGE, MIN, MAX, COUNT)."
    )

    # ------------------------------------------------------------------ setup
    def reset(self, setup: dict[str, Any] | None = None) -> None:
        setup = setup or {}
        self.table = str(setup.get("table", TABLE_NAMES[0]))
        if "rows" in setup:
            rows = setup["rows"]
            if (
                not isinstance(rows, list)
                or not rows
                or not all(isinstance(row, list) and len(row) == len(rows[0]) for row in rows)
                or not 1 <= len(rows[0]) <= MAX_COLUMNS
            ):
                raise UserError("spreadsheet setup 'rows' must be a non-empty list of equal-length lists")
            self.rows = [list(row) for row in rows]
        elif self.table in TABLES:
            self.rows = [list(row) for row in TABLES[self.table]]
        else:
            raise UserError(f"spreadsheet: unknown table {self.table!r}; known: {', '.join(TABLE_NAMES)}")
        self.width = len(self.rows[0])
        self.formats: list[list[dict[str, Any] | None]] | None = None  # a grid, made on first use
        self.reads: list[dict[str, Any]] = []
        self.computed: dict[tuple[int, int], Any] = {}  # formula cell -> shown value
        self.cyclic: set[tuple[int, int]] = set()
        self.has_formulas = False
        if "rows" in setup:  # the shipped tables hold no formulas (checked at import)
            try:
                self.rows = [[self._content(value) for value in row] for row in self.rows]
            except ToolError as error:
                raise UserError(f"spreadsheet setup 'rows': {error.message}") from None
            self._evaluate()

    def state(self) -> dict[str, Any]:
        cells = dict(
            zip(_grid_names(len(self.rows), self.width), chain.from_iterable(self.rows), strict=True)
        )
        formulas: dict[str, str] = {}
        for (r, c), value in self.computed.items():
            name = _cell_name(r, c)
            cells[name] = value
            formulas[name] = self.rows[r][c].text
        formats: dict[str, dict[str, Any]] = {}
        if self.formats is not None:
            for r, row in enumerate(self.formats):
                for c, attributes in enumerate(row):
                    if attributes:
                        formats[_cell_name(r, c)] = attributes
        return {"cells": cells, "formulas": formulas, "formats": formats, "reads": list(self.reads)}

    # --------------------------------------------------------------- helpers
    def _shown(self, row: int, col: int) -> Any:
        value = self.rows[row][col]
        return self.computed[(row, col)] if type(value) is Formula else value

    def _bounds(self) -> str:
        return _range_name(0, 0, len(self.rows) - 1, self.width - 1)

    def _range(self, text: str) -> tuple[int, int, int, int]:
        """(row1, col1, row2, col2), 0-based and inside the table."""
        kind, sheet, corners = _parse_a1(text)
        if sheet is not None and sheet.casefold() != self.table.casefold():
            raise ToolError(
                "spreadsheet:range", f"{text!r} names sheet {sheet!r}; this sheet is {self.table!r}"
            )
        if kind == "cells":
            c1, r1, c2, r2 = corners
        elif kind == "columns":
            (c1, c2), r1, r2 = corners, 0, len(self.rows) - 1
        else:
            (r1, r2), c1, c2 = corners, 0, self.width - 1
        if r1 > r2 or c1 > c2:  # type: ignore[operator]
            raise ToolError("spreadsheet:range", f"{text!r} runs backwards: its start comes after its end")
        if r2 >= len(self.rows) or c2 >= self.width:  # type: ignore[operator]
            raise ToolError("spreadsheet:range", f"{text!r} is outside the table ({self._bounds()})")
        return r1, c1, r2, c2  # type: ignore[return-value]

    def _column(self, letters: str) -> int:
        text = letters.strip()
        if not text.isascii() or not text.isalpha() or len(text) > 3:
            raise ToolError("spreadsheet:range", f"{letters!r} is not a column letter such as C")
        col = fx.column_index(text)
        if col >= self.width:
            raise ToolError(
                "spreadsheet:range",
                f"column {text.upper()} is outside the table (columns A-{fx.column_letters(self.width - 1)})",
            )
        return col

    def _content(self, value: Any) -> Any:
        """What a typed value becomes, as Sheets reads user input: a formula, a number, or text
        ("" clears the cell)."""
        if type(value) is not str:
            return value
        if value.startswith("="):
            try:
                node = fx.parse(value)
            except fx.FormulaSyntaxError as error:
                raise ToolError("spreadsheet:formula", f"{value[:60]!r}: {error}") from None
            for ref in fx.references(node, []):
                r2, c2 = (ref[1], ref[2]) if ref[0] == "c" else (ref[3], ref[4])
                if r2 >= len(self.rows) or c2 >= self.width:
                    raise ToolError(
                        "spreadsheet:formula",
                        f"{value[:60]!r} refers to {fx.render(ref)}, outside the table ({self._bounds()})",
                    )
            self.has_formulas = True
            return Formula(node)
        if not value:
            return None
        if _NUMBER.fullmatch(value.strip()):
            number = float(value)
            if math.isfinite(number):
                return int(number) if "." not in value and abs(number) < 2**53 else number
        return value

    def _contents(self, values: list[Any]) -> list[Any]:
        return [self._content(value) for value in values]

    def _evaluate(self) -> None:
        """Recompute every formula in dependency order (no recursion across cells); cells in or
        behind a cycle show #REF!, as Sheets shows a circular dependency."""
        cells = {
            (r, c): value.node
            for r, row in enumerate(self.rows)
            for c, value in enumerate(row)
            if type(value) is Formula
        }
        self.computed, self.cyclic = {}, set()
        if not cells:
            self.has_formulas = False
            return
        waiting: dict[tuple[int, int], int] = {}
        users: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for cell, node in cells.items():
            needs = set()
            for ref in fx.references(node, []):
                if ref[0] == "c":
                    if (ref[1], ref[2]) in cells:
                        needs.add((ref[1], ref[2]))
                else:
                    _, r1, c1, r2, c2 = ref
                    needs.update(k for k in cells if r1 <= k[0] <= r2 and c1 <= k[1] <= c2)
            waiting[cell] = len(needs)
            for need in needs:
                users.setdefault(need, []).append(cell)
        ready = [cell for cell, n in waiting.items() if n == 0]
        shown = self._shown
        while ready:
            cell = ready.pop()
            self.computed[cell] = fx.evaluate(cells[cell], shown)
            for user in users.get(cell, ()):
                waiting[user] -= 1
                if waiting[user] == 0:
                    ready.append(user)
        for cell in cells:
            if cell not in self.computed:
                self.cyclic.add(cell)
                self.computed[cell] = fx.REF_ERROR

    def _snapshot(self) -> tuple[Any, ...]:
        formats = [row[:] for row in self.formats] if self.formats is not None else None
        return [row[:] for row in self.rows], self.width, formats, self.has_formulas

    def _commit(self, snapshot: tuple[Any, ...] | None, written: list[tuple[int, int]]) -> None:
        """Re-evaluate formulas after a change; a formula just written into a cycle undoes it."""
        if not self.has_formulas:
            return
        self._evaluate()
        bad = [cell for cell in written if cell in self.cyclic]
        if bad:
            if snapshot is not None:
                self.rows, self.width, self.formats, self.has_formulas = snapshot
            self._evaluate()
            r, c = bad[0]
            raise ToolError("spreadsheet:formula", f"{_cell_name(r, c)}: circular reference")

    def _move_references(self, axis: int, span: fx.Span) -> None:
        if not self.has_formulas:
            return
        for row in self.rows:
            for c, value in enumerate(row):
                if type(value) is Formula:
                    node = fx.shift(value.node, axis, span)
                    if node != value.node:
                        row[c] = Formula(node)

    def _insert(self, at: int, values: list[Any], function_name: str) -> dict[str, Any]:
        if len(values) > self.width:
            raise ToolError(
                "spreadsheet:shape",
                f"{function_name}() got {len(values)} values but the table has {self.width} columns",
            )
        if len(self.rows) >= MAX_ROWS:
            raise ToolError("spreadsheet:range", f"the sheet is full ({MAX_ROWS} rows)")
        has_formula = any(type(v) is str and v.startswith("=") for v in values)
        snapshot = self._snapshot() if (self.has_formulas or has_formula) else None
        if at < len(self.rows):
            self._move_references(0, fx.insert_span(at))
        self.rows.insert(at, [None] * self.width)  # formulas in the new row see the grown table
        try:
            row = self._contents(values)
        except ToolError:
            if snapshot is not None:
                self.rows, self.width, self.formats, self.has_formulas = snapshot
            else:
                del self.rows[at]
            raise
        row.extend([None] * (self.width - len(row)))
        self.rows[at] = row
        if self.formats is not None:
            self.formats.insert(at, [None] * self.width)
        self._commit(snapshot, [(at, c) for c in range(self.width)])
        return {"updated_range": _range_name(at, 0, at, self.width - 1), "row": at + 1}

    # ------------------------------------------------------------- functions
    @function
    def get_values(self, range: str) -> dict[str, Any]:
        """Read the shown values of a cell or range (formulas give their results).

        Args:
            range: A1 notation: a cell "B3", a range "A1:C5", whole columns "B:B" or whole rows "1:1".
        """
        r1, c1, r2, c2 = self._range(range)
        values = [[self._shown(r, c) for c in range_(c1, c2 + 1)] for r in range_(r1, r2 + 1)]
        read = {"range": _range_name(r1, c1, r2, c2), "values": values}
        self.reads.append(read)
        return read

    @function
    def update_cell(self, cell: str, value: CellValue) -> dict[str, Any]:
        """Write one cell. Text starting with "=" is a formula, e.g. "=SUM(B2:B9)".

        Args:
            cell: The cell in A1 notation, e.g. "B3".
            value: A number, text, a formula such as "=AVERAGE(C2:C9)", or null to clear the cell.
        """
        r1, c1, r2, c2 = self._range(cell)
        if (r1, c1) != (r2, c2):
            raise ToolError(
                "spreadsheet:range", f"{cell!r} is a range; update_cell() writes one cell like B3"
            )
        content = self._content(value)
        snapshot = self._snapshot() if self.has_formulas else None
        self.rows[r1][c1] = content
        self._commit(snapshot, [(r1, c1)])
        return {"updated_range": _cell_name(r1, c1), "value": self._shown(r1, c1)}

    @function
    def update(self, range: str, values: Annotated[list[Values], Field(min_length=1)]) -> dict[str, Any]:
        """Write a block of cells: one inner list per row, matching the range's shape exactly.

        Args:
            range: A1 range, e.g. "B3:D3" (one row of three cells) or "C2:C4" (three rows).
            values: Rows of values (numbers, text, formulas starting with "=", or null), e.g. [[1, 2, 3]].
        """
        r1, c1, r2, c2 = self._range(range)
        height, width = r2 - r1 + 1, c2 - c1 + 1
        if len(values) != height or any(len(row) != width for row in values):
            shapes = sorted({len(row) for row in values})
            raise ToolError(
                "spreadsheet:shape",
                f"{_range_name(r1, c1, r2, c2)} is {height} row(s) x {width} column(s); values are "
                f"{len(values)} row(s) x {'/'.join(map(str, shapes))} column(s)",
            )
        contents = [self._contents(row) for row in values]
        snapshot = self._snapshot() if self.has_formulas else None
        for r, row in zip(range_(r1, r2 + 1), contents, strict=True):
            self.rows[r][c1 : c2 + 1] = row
        self._commit(snapshot, [(r, c) for r in range_(r1, r2 + 1) for c in range_(c1, c2 + 1)])
        return {"updated_range": _range_name(r1, c1, r2, c2), "updated_cells": height * width}

    @function
    def append_row(self, values: Values) -> dict[str, Any]:
        """Add a row after the last row of the table. Values fill the columns from A; missing
        trailing values stay empty.

        Args:
            values: The row's values in column order, e.g. ["Zoe", 88, 92]; formulas start with "=".
        """
        return self._insert(len(self.rows), values, "append_row")

    @function
    def insert_row(self, row: Annotated[int, Field(ge=2)], values: Values) -> dict[str, Any]:
        """Insert a row so that it becomes row `row`; that row and the ones below move down.

        Args:
            row: Row number the new row takes (2 = first data row; one past the last row appends).
            values: The row's values in column order; missing trailing values stay empty.
        """
        if row > len(self.rows) + 1:
            raise ToolError(
                "spreadsheet:range",
                f"row {row} is past the end of the table (rows 2-{len(self.rows) + 1} can take a new row)",
            )
        return self._insert(row - 1, values, "insert_row")

    @function
    def delete_rows(
        self, start: Annotated[int, Field(ge=2)], end: Annotated[int, Field(ge=2)] | None = None
    ) -> dict[str, Any]:
        """Delete rows `start` to `end` (inclusive); rows below move up. The header (row 1) stays.

        Args:
            start: First row number to delete (2 or more).
            end: Last row number to delete; omit it to delete only row `start`.
        """
        last = start if end is None else end
        if start > last:
            raise ToolError("spreadsheet:range", f"rows {start}-{last} run backwards: start comes after end")
        if last > len(self.rows):
            raise ToolError("spreadsheet:range", f"row {last} is outside the table (rows 1-{len(self.rows)})")
        snapshot = self._snapshot() if self.has_formulas else None
        self._move_references(0, fx.delete_span(start - 1, last - 1))
        del self.rows[start - 1 : last]
        if self.formats is not None:
            del self.formats[start - 1 : last]
        self._commit(snapshot, [])
        return {"deleted_rows": last - start + 1, "rows": len(self.rows)}

    @function
    def delete_columns(self, start: str, end: str | None = None) -> dict[str, Any]:
        """Delete columns `start` to `end` (inclusive, letters); columns to the right move left.

        Args:
            start: First column letter to delete, e.g. "C".
            end: Last column letter to delete; omit it to delete only column `start`.
        """
        first = self._column(start)
        last = first if end is None else self._column(end)
        if first > last:
            raise ToolError(
                "spreadsheet:range", f"columns {start}-{end} run backwards: start comes after end"
            )
        if last - first + 1 >= self.width:
            raise ToolError("spreadsheet:range", "cannot delete every column of the table")
        snapshot = self._snapshot() if self.has_formulas else None
        self._move_references(1, fx.delete_span(first, last))
        for row in self.rows:
            del row[first : last + 1]
        if self.formats is not None:
            for row in self.formats:
                del row[first : last + 1]
        self.width -= last - first + 1
        self._commit(snapshot, [])
        return {"deleted_columns": last - first + 1, "columns": self.width}

    @function
    def sort(self, column: str, ascending: bool = True) -> dict[str, Any]:
        """Sort the data rows (row 2 down; the header stays) by one column. Numbers come before
        text, text ignores case, empty cells go last; ties keep their order. Formats move with
        their rows; formula text is kept as written.

        Args:
            column: Column letter to sort by, e.g. "B".
            ascending: True for smallest/A first, False for largest/Z first.
        """
        col = self._column(column)
        shown = self._shown
        filled = [r for r in range_(1, len(self.rows)) if shown(r, col) is not None]
        empty = [r for r in range_(1, len(self.rows)) if shown(r, col) is None]
        order = [0, *sorted(filled, key=lambda r: _sort_key(shown(r, col)), reverse=not ascending), *empty]
        self.rows = [self.rows[r] for r in order]
        if self.formats is not None:
            self.formats = [self.formats[r] for r in order]
        if self.has_formulas:
            self._evaluate()
        return {"sorted_by": fx.column_letters(col), "ascending": ascending, "rows": len(self.rows) - 1}

    @function
    def set_format(
        self,
        range: str,
        bold: bool | None = None,
        italic: bool | None = None,
        number_format: NumberFormat | None = None,
        background: Color | None = None,
    ) -> dict[str, Any]:
        """Format a cell or range; attributes left out (null) are not changed.

        Args:
            range: A1 notation: a cell "B3", a range "A1:E1", whole columns "D:D" or whole rows "1:1".
            bold: Bold text on (true) or off (false).
            italic: Italic text on (true) or off (false).
            number_format: How numbers show: automatic, number, currency, percent, date or text.
            background: Fill colour: white (none), yellow, green, blue, red, orange or gray.
        """
        given = {
            key: value
            for key, value in (
                ("bold", bold),
                ("italic", italic),
                ("number_format", number_format),
                ("background", background),
            )
            if value is not None
        }
        if not given:
            raise ToolError(
                "spreadsheet:format", "give at least one of bold, italic, number_format, background"
            )
        r1, c1, r2, c2 = self._range(range)
        if self.formats is None:
            self.formats = [[None] * self.width for _ in self.rows]
        for r in range_(r1, r2 + 1):
            row = self.formats[r]
            for c in range_(c1, c2 + 1):
                attributes = dict(row[c] or {})
                for key, value in given.items():
                    if value == FORMAT_DEFAULTS[key]:
                        attributes.pop(key, None)
                    else:
                        attributes[key] = value
                row[c] = attributes or None
        return {"formatted_range": _range_name(r1, c1, r2, c2), "cells": (r2 - r1 + 1) * (c2 - c1 + 1)}

    # ------------------------------------------------------------- summaries
    @classmethod
    def final_reply(cls, calls: list[Call], results: list[Any]) -> str:
        done: list[str] = []
        seen: list[str] = []
        for call, result in zip(calls, results, strict=False):
            if not isinstance(result, dict):
                continue
            if call.name == "get_values":
                seen.append(f"{result['range']} holds {_describe(result['values'])}")
            elif call.name == "update_cell":
                done.append(f"set {result['updated_range']} to {_show(result['value'])}")
            elif call.name == "update":
                done.append(f"updated {result['updated_range']} ({result['updated_cells']} cells)")
            elif call.name in ("append_row", "insert_row"):
                verb = "added" if call.name == "append_row" else "inserted"
                done.append(f"{verb} a row at row {result['row']}")
            elif call.name == "delete_rows":
                n = result["deleted_rows"]
                done.append(f"deleted {n} row{'s' if n != 1 else ''} ({result['rows']} left)")
            elif call.name == "delete_columns":
                n = result["deleted_columns"]
                done.append(f"deleted {n} column{'s' if n != 1 else ''} ({result['columns']} left)")
            elif call.name == "sort":
                way = "ascending" if result["ascending"] else "descending"
                done.append(f"sorted the rows by column {result['sorted_by']} ({way})")
            elif call.name == "set_format":
                done.append(f"formatted {result['formatted_range']}")
        parts = []
        if done:
            parts.append("I " + _join(done))
        if seen:
            parts.append(_join(seen))
        if not parts:
            return "Done."
        sentence = "; ".join(parts)
        return sentence[0].upper() + sentence[1:] + "."


range_ = range  # the functions' `range` argument shadows the builtin inside them


def _show(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else repr(value)
    return str(value)


def _describe(values: list[list[Any]]) -> str:
    flat = [_show(v) for row in values for v in row]
    if len(flat) == 1:
        return flat[0]
    shown = "; ".join(", ".join(_show(v) for v in row) for row in values)
    return shown if len(flat) <= 24 else ", ".join(flat[:24]) + ", ..."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"

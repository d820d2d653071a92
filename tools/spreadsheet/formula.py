"""A small, safe formula language for the spreadsheet simulator: a hand-written tokenizer and
recursive-descent parser (never `eval`), evaluated over the sheet's cells.

Grammar (case-insensitive, spaces ignored):

    formula := "=" expr
    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := ("-" | "+") unary | atom
    atom    := number | cell | FUNCTION "(" arg ("," arg)* ")" | "(" expr ")"
    arg     := cell ":" cell | expr
    FUNCTION is SUM, AVERAGE, MIN, MAX or COUNT; a cell is A1-style ("B2").

A parsed formula is a tuple tree with 0-based absolute positions, so inserting or deleting rows
and columns can move its references the way Sheets does (`shift`), and its canonical text is
rendered back from the tree (upper case, no spaces, no redundant parentheses).
Evaluation errors become the cell's value (`#DIV/0!`, `#VALUE!`, `#NUM!`, `#REF!`), as in Sheets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

FUNCTIONS = ("SUM", "AVERAGE", "MIN", "MAX", "COUNT")
MAX_CHARS = 1000
MAX_TOKENS = 200
MAX_DEPTH = 40

Node = tuple[Any, ...]
# node kinds: ("n", number) ("c", row, col) ("r", row1, col1, row2, col2) ("x",) a deleted
# reference, ("u", node) negation, ("b", op, left, right), ("f", NAME, [args])


class FormulaSyntaxError(ValueError):
    """The formula text is not in the grammar; the simulator turns it into a ToolError."""


class CellError(str):
    """An error value shown in a cell (a str, so it serialises as its text)."""

    __slots__ = ()


REF_ERROR = CellError("#REF!")
DIV_ERROR = CellError("#DIV/0!")
VALUE_ERROR = CellError("#VALUE!")
NUM_ERROR = CellError("#NUM!")


class _Raised(Exception):
    def __init__(self, value: CellError):
        self.value = value


def column_letters(index: int) -> str:
    """A 0-based column index to letters: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_index(letters: str) -> int:
    """Column letters to a 0-based index: A -> 0, AA -> 26 (letters already checked, any case)."""
    index = 0
    for char in letters.upper():
        index = index * 26 + ord(char) - 64
    return index - 1


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)"
    r"|(?P<ref>[A-Za-z]{1,3}\d{1,7})(?![A-Za-z0-9_.(])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<op>[-+*/(),:]))",
    re.ASCII,
)
_TRAILING_SPACE = re.compile(r"\s*", re.ASCII)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    while True:
        pos = _TRAILING_SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= end:
            return tokens
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FormulaSyntaxError(f"unexpected {text[pos]!r} at position {pos + 2}")
        tokens.append((match.lastgroup or "", match.group(match.lastgroup or 0)))
        if len(tokens) > MAX_TOKENS:
            raise FormulaSyntaxError(f"formula is too long (more than {MAX_TOKENS} tokens)")
        pos = match.end()


def _cell(text: str) -> tuple[int, int]:
    split = next(i for i, char in enumerate(text) if char.isdigit())
    row = int(text[split:])
    if row < 1:
        raise FormulaSyntaxError(f"{text.upper()} is not a cell: rows start at 1")
    return row - 1, column_index(text[:split])


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.i += 1
        return token

    def expect(self, op: str) -> None:
        kind, text = self.take()
        if kind != "op" or text != op:
            raise FormulaSyntaxError(f"expected {op!r}, got {text or 'the end'!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaSyntaxError(f"formula is nested more than {MAX_DEPTH} levels deep")

    def formula(self) -> Node:
        if not self.tokens:
            raise FormulaSyntaxError("nothing after '='")
        node = self.expr()
        kind, text = self.peek()
        if kind != "end":
            raise FormulaSyntaxError(f"unexpected {text!r} after a complete expression")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            node = ("b", op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek() in (("op", "*"), ("op", "/")):
            op = self.take()[1]
            node = ("b", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() in (("op", "-"), ("op", "+")):
            op = self.take()[1]
            self.enter()
            operand = self.unary()
            self.depth -= 1
            return ("u", operand) if op == "-" else operand
        return self.atom()

    def atom(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            value = float(text)
            if not math.isfinite(value):
                raise FormulaSyntaxError(f"number {text[:20]}... is too large")
            return ("n", value)
        if kind == "ref":
            if self.peek() == ("op", ":"):
                raise FormulaSyntaxError("a range such as B2:B9 can only be an argument of a function")
            return ("c", *_cell(text))
        if kind == "name":
            name = text.upper()
            if name not in FUNCTIONS:
                raise FormulaSyntaxError(f"unknown function or name {text!r}; use {', '.join(FUNCTIONS)}")
            self.expect("(")
            self.enter()
            args = [self.arg()]
            while self.peek() == ("op", ","):
                self.take()
                args.append(self.arg())
            self.expect(")")
            self.depth -= 1
            return ("f", name, args)
        if (kind, text) == ("op", "("):
            self.enter()
            node = self.expr()
            self.expect(")")
            self.depth -= 1
            return node
        raise FormulaSyntaxError(f"expected a number, cell or function, got {text or 'the end'!r}")

    def arg(self) -> Node:
        if self.peek()[0] == "ref" and self.peek(1) == ("op", ":"):
            first = _cell(self.take()[1])
            self.take()
            kind, text = self.take()
            if kind != "ref":
                raise FormulaSyntaxError(f"a range needs a cell after ':', got {text or 'the end'!r}")
            second = _cell(text)
            if self.peek() == ("op", ":"):
                raise FormulaSyntaxError("a range has exactly two corners, like B2:B9")
            (r1, c1), (r2, c2) = first, second
            return ("r", min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2))
        return self.expr()


@lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    """The tree of a formula text that starts with '='. Raises FormulaSyntaxError. Trees are
    shared between callers (cached), so nothing may modify one."""
    if len(text) > MAX_CHARS:
        raise FormulaSyntaxError(f"formula is longer than {MAX_CHARS} characters")
    return _Parser(_tokens(text[1:])).formula()


# -------------------------------------------------------------------- rendering

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _cell_text(row: int, col: int) -> str:
    return f"{column_letters(col)}{row + 1}"


def render(node: Node) -> str:
    """Canonical text of a tree, without the leading '='."""
    kind = node[0]
    if kind == "n":
        return _number_text(node[1])
    if kind == "c":
        return _cell_text(node[1], node[2])
    if kind == "r":
        return f"{_cell_text(node[1], node[2])}:{_cell_text(node[3], node[4])}"
    if kind == "x":
        return "#REF!"
    if kind == "u":
        inner = render(node[1])
        return f"-({inner})" if node[1][0] == "b" else f"-{inner}"
    if kind == "f":
        return f"{node[1]}({','.join(render(arg) for arg in node[2])})"
    op, left, right = node[1], node[2], node[3]
    precedence = _PRECEDENCE[op]
    left_text, right_text = render(left), render(right)
    if left[0] == "b" and _PRECEDENCE[left[1]] < precedence:
        left_text = f"({left_text})"
    if right[0] == "b" and _PRECEDENCE[right[1]] <= precedence:
        right_text = f"({right_text})"
    return f"{left_text}{op}{right_text}"


# ----------------------------------------------------------------- references


def references(node: Node, out: list[Node]) -> list[Node]:
    """Every cell ("c") and range ("r") node of a tree, in order."""
    kind = node[0]
    if kind in ("c", "r"):
        out.append(node)
    elif kind == "u":
        references(node[1], out)
    elif kind == "b":
        references(node[2], out)
        references(node[3], out)
    elif kind == "f":
        for arg in node[2]:
            references(arg, out)
    return out


Span = Callable[[int, int], "tuple[int, int] | None"]


def shift(node: Node, axis: int, span: Span) -> Node:
    """The tree with every reference moved along one axis (0 rows, 1 columns) by `span`, which
    maps an inclusive index interval to its new interval, or None when it was deleted."""
    kind = node[0]
    if kind == "c":
        moved = span(node[1 + axis], node[1 + axis])
        if moved is None:
            return ("x",)
        return ("c", moved[0], node[2]) if axis == 0 else ("c", node[1], moved[0])
    if kind == "r":
        _, r1, c1, r2, c2 = node
        moved = span(r1, r2) if axis == 0 else span(c1, c2)
        if moved is None:
            return ("x",)
        return ("r", moved[0], c1, moved[1], c2) if axis == 0 else ("r", r1, moved[0], r2, moved[1])
    if kind == "u":
        return ("u", shift(node[1], axis, span))
    if kind == "b":
        return ("b", node[1], shift(node[2], axis, span), shift(node[3], axis, span))
    if kind == "f":
        return ("f", node[1], [shift(arg, axis, span) for arg in node[2]])
    return node


def insert_span(at: int, count: int = 1) -> Span:
    """Indexes at or after `at` move down by `count` (a range that spans `at` grows)."""

    def span(first: int, last: int) -> tuple[int, int]:
        return (first + count if first >= at else first, last + count if last >= at else last)

    return span


def delete_span(start: int, end: int) -> Span:
    """Indexes start..end (inclusive) are removed; later ones move up; a range shrinks."""
    count = end - start + 1

    def span(first: int, last: int) -> tuple[int, int] | None:
        new_first = first if first < start else (start if first <= end else first - count)
        new_last = last if last < start else (start - 1 if last <= end else last - count)
        return None if new_first > new_last else (new_first, new_last)

    return span


# ------------------------------------------------------------------- evaluation

Getter = Callable[[int, int], Any]


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _scalar(node: Node, get: Getter) -> Any:
    """A value for arithmetic: a number, or raises a cell error."""
    value = _value(node, get)
    if value is None:
        return 0
    if _is_number(value):
        return value
    raise _Raised(value if isinstance(value, CellError) else VALUE_ERROR)


def _value(node: Node, get: Getter) -> Any:
    kind = node[0]
    if kind == "n":
        return node[1]
    if kind == "c":
        value = get(node[1], node[2])
        if isinstance(value, CellError):
            raise _Raised(value)
        return value
    if kind == "x":
        raise _Raised(REF_ERROR)
    if kind == "u":
        return -_scalar(node[1], get)
    if kind == "b":
        left, right = _scalar(node[2], get), _scalar(node[3], get)
        op = node[1]
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if right == 0:
            raise _Raised(DIV_ERROR)
        return left / right
    if kind == "f":
        return _call(node[1], node[2], get)
    raise _Raised(VALUE_ERROR)  # a bare range: the parser never builds one


def _numbers(args: list[Node], get: Getter) -> tuple[list[float], int]:
    """Numbers of a function's arguments, as Sheets reads them: text and empty cells in
    references are skipped; a direct argument must be a number. Returns (numbers, count)."""
    numbers: list[float] = []
    for arg in args:
        kind = arg[0]
        if kind in ("r", "c"):
            r1, c1, r2, c2 = arg[1:] if kind == "r" else (arg[1], arg[2], arg[1], arg[2])
            for r in range(r1, r2 + 1):
                for c in range(c1, c2 + 1):
                    value = get(r, c)
                    if isinstance(value, CellError):
                        raise _Raised(value)
                    if _is_number(value):
                        numbers.append(value)
        else:
            numbers.append(_scalar(arg, get))
    return numbers, len(numbers)


def _call(name: str, args: list[Node], get: Getter) -> Any:
    numbers, count = _numbers(args, get)
    if name == "COUNT":
        return count
    if name == "SUM":
        return math.fsum(numbers)
    if name == "AVERAGE":
        if not count:
            raise _Raised(DIV_ERROR)
        return math.fsum(numbers) / count
    if not count:
        return 0
    return min(numbers) if name == "MIN" else max(numbers)


def evaluate(node: Node, get: Getter) -> Any:
    """The value a cell shows: a number (integral results as int), text, or a CellError."""
    try:
        value = _value(node, get)
    except _Raised as raised:
        return raised.value
    except OverflowError:  # arithmetic on integers too large for a float
        return NUM_ERROR
    if value is None:
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            return NUM_ERROR
        value = round(value, 10)
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
    return value

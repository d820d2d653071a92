"""A reader for the narrow grammar the generator's templates emit, without `ast`.

The `python` format's actions, as the templates write them, are one call per line:
`API.name(arg, ..., kw=literal, ...)` with literals spelt as JSON spells them (`"text"`, `-1`,
`20.5`, `[...]`, `{"k": v}`) or as python's `True`/`False`/`None`, separated by `", "`. Such a
line means the same wherever it stands, so it can be read on its own with a few regular
expressions, 5 to 10 times faster than `ast.parse` and the whitelist walk of `ast_reader`.

The grammar is a strict subset of what `PythonFormat` reads: anything outside it (another
receiver or spacing, a backslash anywhere, single quotes, a constructor such as `Date(...)`, a
name, a trailing comma, a python keyword as a name, a non-finite or over-long number, nesting
deeper than `MAX_DEPTH`, positional arguments of an unknown function, a repeated argument) makes
`read_line` return None and the caller takes the full path, which also says what is wrong. Where
it does answer, it gives exactly the Call the full reader gives (tests/unit/test_fast_parse.py
compares the two on every template's rendered actions and on random literal mixes).
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping
from typing import Any

from toolbench.foundation.records import Call, FunctionSpec

MAX_DEPTH = 8  # brackets nested inside one argument; deeper goes to the full reader

_LINE = re.compile(r"API\.([A-Za-z_][A-Za-z0-9_]*+)\((.*)\)", re.DOTALL)
# One argument: an optional `keyword=`, then a value or the opening bracket of one. A string has
# no backslash (escapes mean different things in JSON and python), no quote, no control
# character (python refuses a NUL and a raw line break; the rest are left to the full reader)
# and no lone surrogate (which cannot be source text).
_STRING = r'"([^"\\\x00-\x1f\x7f\ud800-\udfff]*+)"'
_NUMBER = r"(-?(?:0|[1-9][0-9]*+))(\.[0-9]++)?+([eE][+-]?[0-9]++)?+"
_VALUE = rf"(?:{_STRING}|{_NUMBER}|(True|False|None)(?![A-Za-z0-9_])|([\[{{]))"
_ARG = re.compile(rf"(?:([A-Za-z_][A-Za-z0-9_]*+)=)?{_VALUE}")
_ITEM = re.compile(_VALUE)
_KEY = re.compile(_STRING + ": ")
_CONSTANTS = {"True": True, "False": False, "None": None}
_KEYWORDS = frozenset(keyword.kwlist)


class _Miss(Exception):
    """Outside the grammar: the full reader decides."""


def _number(whole: str, fraction: str | None, exponent: str | None) -> int | float:
    if fraction is None and exponent is None:
        return int(whole)  # beyond python's digit limit: ValueError, as ast.parse refuses it too
    value = float(whole + (fraction or "") + (exponent or ""))
    if not math.isfinite(value):  # the full reader's `value` error
        raise _Miss
    return value


def _value(text: str, match: re.Match[str], depth: int) -> tuple[Any, int]:
    """The value `match` (of `_ARG` or `_ITEM`, whose groups end with the value's) starts, and
    where it ends."""
    string, whole, fraction, exponent, constant, bracket = match.groups()[-6:]
    end = match.end()
    if string is not None:
        return string, end
    if whole is not None:
        return _number(whole, fraction, exponent), end
    if constant is not None:
        return _CONSTANTS[constant], end
    if depth >= MAX_DEPTH:
        raise _Miss
    if bracket == "[":
        items: list[Any] = []
        if text.startswith("]", end):
            return items, end + 1
        while True:
            item = _ITEM.match(text, end)
            if item is None:
                raise _Miss
            value, end = _value(text, item, depth + 1)
            items.append(value)
            if text.startswith(", ", end):
                end += 2
            elif text.startswith("]", end):
                return items, end + 1
            else:
                raise _Miss
    result: dict[str, Any] = {}
    if text.startswith("}", end):
        return result, end + 1
    while True:
        key = _KEY.match(text, end)
        if key is None:
            raise _Miss
        item = _ITEM.match(text, key.end())
        if item is None:
            raise _Miss
        result[key.group(1)], end = _value(text, item, depth + 1)  # a repeated key: the last wins
        if text.startswith(", ", end):
            end += 2
        elif text.startswith("}", end):
            return result, end + 1
        else:
            raise _Miss


def read_line(line: str, specs: Mapping[str, FunctionSpec]) -> Call | None:
    """The call one line spells (no leading blank, trailing blanks allowed), or None when the
    line is outside the grammar. `specs`: the functions positional arguments are bound to."""
    match = _LINE.fullmatch(line.rstrip(" \t"))
    if match is None:
        return None
    name, text = match.groups()
    if name in _KEYWORDS:
        return None
    arguments: dict[str, Any] = {}
    if not text:
        return Call.trusted(name, arguments)
    params: list[str] | None = None
    positional = 0
    end, size = 0, len(text)
    try:
        while True:
            arg = _ARG.match(text, end)
            if arg is None:
                return None
            last = arg.lastindex  # the value's group: the common kinds are taken inline
            if last == 2:
                value, end = arg.group(2), arg.end()
            elif last == 3:
                value, end = int(arg.group(3)), arg.end()
            else:
                value, end = _value(text, arg, 0)
            kw = arg.group(1)
            if kw is None:
                if len(arguments) != positional:  # a positional after a keyword: a syntax error
                    return None
                if params is None:
                    spec = specs.get(name)
                    if spec is None:
                        return None  # the full reader's unknown_function
                    params = spec.parameter_names
                if positional >= len(params):
                    return None  # too_many_positional
                arguments[params[positional]] = value
                positional += 1
            elif kw in _KEYWORDS or kw in arguments:
                return None  # a syntax error, or duplicate_argument
            else:
                arguments[kw] = value
            if end == size:
                return Call.trusted(name, arguments)
            if not text.startswith(", ", end):
                return None
            end += 2
    except (_Miss, ValueError, RecursionError):
        return None

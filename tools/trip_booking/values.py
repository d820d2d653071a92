"""The value objects of trip_booking: `Loc("Paris")` and `Date(4, 12, 2025)` (month, day, year).

In the python call format they are written as constructor calls; in JSON (and in every
`Call.arguments`) they are plain strings: the location name and the ISO date "2025-04-12".
`parse(render(p)) == p` holds for every string: a value that is not a canonical ISO date is
rendered as a plain string literal, so it comes back unchanged (and the simulator refuses it).
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Any

from toolbench.core.calls import PythonFormat, ValueConstructor

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PLAIN = PythonFormat()  # no context: writes any JSON value as a python literal
_DATE_PARTS = ("month", "day", "year")


def parse_iso(value: Any) -> date | None:
    """The date of a canonical ISO string "YYYY-MM-DD", or None for anything else. Remembered
    for a str (a few hundred dates recur in every generated sample; a date is immutable)."""
    if type(value) is not str:
        return _parse_iso(value)
    if value in _DATES:
        return _DATES[value]
    found = _parse_iso(value)
    if len(_DATES) >= 1 << 14:
        _DATES.clear()
    _DATES[value] = found
    return found


_DATES: dict[str, date | None] = {}


def _parse_iso(value: Any) -> date | None:
    if not isinstance(value, str) or not _ISO.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return value


_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def build_date(args: list[Any], kwargs: dict[str, Any]) -> str:
    """`Date(month, day, year)` (or the same by keyword, or one ISO string) -> "YYYY-MM-DD"."""
    if len(args) == 3 and not kwargs:  # the common case, checked cheaply (the generator's hot path)
        month, day, year = args
        if (
            type(month) is int
            and type(day) is int
            and type(year) is int
            and 1 <= year <= 9999
            and 1 <= month <= 12
            and 1 <= day <= (_MONTH_DAYS[month] if month != 2 else 28 + calendar.isleap(year))
        ):
            return f"{year:04d}-{month:02d}-{day:02d}"
    return _build_date_checked(args, kwargs)


def _build_date_checked(args: list[Any], kwargs: dict[str, Any]) -> str:
    if len(args) == 1 and not kwargs and isinstance(args[0], str):
        if parse_iso(args[0]) is None:
            raise ValueError(
                f"{args[0]!r} is not a date; write Date(month, day, year), e.g. Date(4, 12, 2025)"
            )
        return args[0]
    if len(args) > 3:
        raise ValueError(f"takes 3 arguments (month, day, year), got {len(args)}")
    values = dict(zip(_DATE_PARTS, args, strict=False))
    for key, value in kwargs.items():
        if key not in _DATE_PARTS:
            raise ValueError(f"unexpected argument {key!r}; the arguments are month, day, year")
        if key in values:
            raise ValueError(f"got {key} twice")
        values[key] = value
    missing = [part for part in _DATE_PARTS if part not in values]
    if missing:
        raise ValueError(
            f"missing {', '.join(missing)}; write Date(month, day, year), e.g. Date(4, 12, 2025)"
        )
    month, day, year = (_whole(part, values[part]) for part in _DATE_PARTS)
    if not 1 <= year <= 9999:
        raise ValueError(f"year {year} is outside 1..9999")
    if not 1 <= month <= 12:
        raise ValueError(f"month {month} is not between 1 and 12 (the order is month, day, year)")
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        raise ValueError(f"day {day} does not exist: {calendar.month_name[month]} {year} has {last} days")
    return f"{year:04d}-{month:02d}-{day:02d}"


def render_date(value: Any) -> str:
    found = parse_iso(value)
    if found is None:
        return _PLAIN.literal(value)
    return f"Date({found.month}, {found.day}, {found.year})"


def build_loc(args: list[Any], kwargs: dict[str, Any]) -> str:
    """`Loc("Paris")` (or `Loc(name="Paris")`) -> "Paris", unchanged."""
    if kwargs and set(kwargs) != {"name"}:
        raise ValueError(f'unexpected argument {sorted(set(kwargs) - {"name"})[0]!r}; write Loc("Paris")')
    values = [*args, *kwargs.values()]
    if len(values) != 1:
        raise ValueError(f'takes exactly one place name, e.g. Loc("Paris"), got {len(values)} arguments')
    if not isinstance(values[0], str):
        raise ValueError(f"the place must be a string, got {values[0]!r}")
    return values[0]


def render_loc(value: Any) -> str:
    return f"Loc({_PLAIN.literal(value)})" if isinstance(value, str) else _PLAIN.literal(value)


DATE = ValueConstructor("Date", "date", build_date, render_date)
LOC = ValueConstructor("Loc", "location", build_loc, render_loc)

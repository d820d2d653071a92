"""What every call format shares: the interface, value constructors, and fence stripping."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from toolbench.errors import CallParseError
from toolbench.records import FunctionSpec, Program

_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)


def strip_fences(text: str) -> str:
    """Models love Markdown: keep the first fenced block's body if there is one."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


def parse_with_fences(parse: Callable[[str], Any], text: str) -> Any:
    """Parse the text as it is; only if that fails and it holds a Markdown fence, parse the fenced
    block. (Stripping first would cut a string argument that itself contains three backticks.)"""
    try:
        return parse(text)
    except CallParseError:
        inner = strip_fences(text)
        if inner == text:
            raise
        return parse(inner)


@dataclass(frozen=True)
class ValueConstructor:
    """A value object a tool lets the python format spell as a call, e.g. `Date(4, 12, 2023)`.

    `build` turns the literal arguments into the canonical JSON value (e.g. "2023-04-12") and
    raises ValueError with a reason when they are wrong; `render` goes back. A parameter whose
    JSON schema has `"format": <format>` is rendered through the constructor.
    """

    name: str
    format: str
    build: Callable[[list[Any], dict[str, Any]], Any]
    render: Callable[[Any], str]


class CallFormat(Protocol):
    name: str

    def render(self, program: Program) -> str: ...

    def parse(self, text: str) -> Program: ...


@dataclass(frozen=True)
class FormatContext:
    """What a format may know about the functions on offer (to bind positional arguments and
    to spell value objects). Formats work without it, with fewer conveniences."""

    specs: Mapping[str, FunctionSpec]
    constructors: Mapping[str, ValueConstructor]

    @classmethod
    def empty(cls) -> FormatContext:
        return cls({}, {})

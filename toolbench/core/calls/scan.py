"""Where calls start in an answer that has no tool-call marker: the line rule.

A call *begins a line* (after indentation). A line starts a call when it begins with

- `json`: `{` (or `[{`) whose first member (or one of the first four, the others scalars, as in
  `{"id": "call_1", "type": "function", …}`) is a call key: `"name"`, `"function"`, `"tool_calls"`,
  `"arguments"`, `"parameters"`, or `"type": "function"` (single quotes too: `{'name': …`);
- `list`: `[` then a function name and `(`, as in `[get_weather(city="Paris"), ...]`;
- `call`: a function name (dotted, up to 9 parts, e.g. `API.search`) and `(` right after it,
  optionally after an assignment `d = `, as in `API.set_location("Oakland")`;
- `assign`: `name =` (a literal assignment such as `n = 3`; it only counts beside `call` lines).

A `call` line is *prose* after all when its parentheses close, matched, on that same line and
words follow (`search() sorts the results`, `set_location(value), which needs a city`,
`search().`): that is a sentence that begins with a function's name, not a call. A call that
never closes (a truncated answer), spans lines, or closes with the wrong bracket is a call (and
the reader will say what is wrong with it). Mentions inside a sentence (`I cannot call
set_location because ...`, ``use `search()` ``) never start a call: they do not begin the line.

The scanner knows Python/JSON string literals (single, double, triple quotes, backslash escapes)
and bracket nesting, so a call may span lines; it is linear in the text, and prose lines are
skipped by one regex search, not line by line in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from toolbench.core.calls.base import MAX_NESTING

NAME = r"[^\W\d]\w*(?:\.[^\W\d]\w*){0,8}"  # bounded: a repeated group costs the regex engine memory
_SCALAR_MEMBER = r"""["'][^"'\n]{0,40}["']\s*:\s*(?:"[^"\n]{0,100}"|'[^'\n]{0,100}'|[\w.+-]{1,40})"""
_JSON_KEY = (
    r"""["'](?:name|function|tool_calls|arguments|parameters)["']\s*:|["']type["']\s*:\s*["']function["']"""
)
_STARTS = {
    "list": rf"\[\s*{NAME}\(",
    # `{` then a call key, possibly after a few scalar members (`{"id": "call_1", "type": …`)
    "json": rf"\[?\s*\{{(?=(?:\s*{_SCALAR_MEMBER}\s*,){{0,3}}\s*(?:{_JSON_KEY}))",
    "call": rf"(?:[^\W\d]\w*[ \t]*=[ \t]*)?{NAME}\(",
    "assign": r"[^\W\d]\w*[ \t]*=(?!=)",
}
_JSON_START = re.compile(_STARTS["json"])
_CLOSING = {"(": ")", "[": "]", "{": "}"}
_STOP = re.compile(r"[()\[\]{}\"'#\n]")
# Possessive quantifiers (`*+`): a literal is read in one pass, without the backtracking state the
# regex engine would keep per character (25 MB for one unclosed 200,000-character string).
_STRING = {
    '"': re.compile(r'"[^"\\\n]*+(?:\\[\s\S][^"\\\n]*+)*+(?:"|(?=\n)|\Z)'),
    "'": re.compile(r"'[^'\\\n]*+(?:\\[\s\S][^'\\\n]*+)*+(?:'|(?=\n)|\Z)"),
}
_TRIPLE = {
    '"': re.compile(r'"""[^"\\]*+(?:(?:\\[\s\S]|"(?!""))[^"\\]*+)*+(?:"""|\Z)'),
    "'": re.compile(r"'''[^'\\]*+(?:(?:\\[\s\S]|'(?!''))[^'\\]*+)*+(?:'''|\Z)"),
}
_CODE_AFTER = re.compile(rf"[ \t\r]*(?:$|[;#)\]}}\[]|\.[^\W\d]|{NAME}\()")

ALL_KINDS = ("json", "list", "call", "assign")


@dataclass(frozen=True)
class Segment:
    kind: str  # json | list | call | assign
    start: int  # the first character of the call (indentation skipped)
    end: int  # the end of the line where the call's brackets close (the text's end if never)


def json_call_starts(text: str, p: int) -> bool:
    """Does a call-shaped JSON value start at p?"""
    return _JSON_START.match(text, p) is not None


_CANDIDATES: dict[tuple[str, ...], re.Pattern[str]] = {}


def _candidates(kinds: tuple[str, ...]) -> re.Pattern[str]:
    """One regex finding the lines that may start a call of these kinds (prose lines are skipped
    by the regex engine, not by Python)."""
    pattern = _CANDIDATES.get(kinds)
    if pattern is None:
        alternatives = "|".join(f"(?P<{kind}>{_STARTS[kind]})" for kind in ALL_KINDS if kind in kinds)
        pattern = _CANDIDATES[kinds] = re.compile(rf"^[ \t]*(?:{alternatives})", re.MULTILINE)
    return pattern


def statement_close(text: str, p: int) -> tuple[int, bool]:
    """Scan from p to where the first bracket opened closes (or, with no bracket open, to the
    line's end). Returns that index and whether it was reached (False: the brackets stay open to
    the end, or a closing bracket does not match its opening one: broken code either way)."""
    opened: list[str] = []
    i = p
    n = len(text)
    while True:
        match = _STOP.search(text, i)
        if match is None:
            return n, not opened
        char = match.group()
        i = match.start() + 1
        if char in _CLOSING:
            opened.append(_CLOSING[char])
            if len(opened) > MAX_NESTING:  # the readers refuse it anyway: no need to scan on
                return n, False
        elif char in ")]}":
            if not opened or opened.pop() != char:
                return n, False
            if not opened:
                return i, True
        elif char == "\n":
            if not opened:
                return i - 1, True
        elif char == "#":
            if not opened:
                newline = text.find("\n", i)
                return (n if newline < 0 else newline), True
        else:  # a string literal
            i -= 1
            pattern = _TRIPLE[char] if text.startswith(char * 3, i) else _STRING[char]
            i = pattern.match(text, i).end()  # always matches: the quote itself


def _line_end(text: str, i: int) -> int:
    newline = text.find("\n", i)
    return len(text) if newline < 0 else newline


def next_segment(text: str, pos: int, kinds: tuple[str, ...] = ALL_KINDS) -> Segment | None:
    """The first call that starts on a line at or after pos (pos mid-line: from the next line)."""
    n = len(text)
    if pos > 0 and text[pos - 1] != "\n":
        pos = _line_end(text, pos) + 1
    pattern = _candidates(kinds)
    while pos < n and (match := pattern.search(text, pos)) is not None:
        kind = match.lastgroup
        p = match.start(kind)
        close, reached = statement_close(text, p)
        if not reached:
            return Segment(kind, p, n)
        end = _line_end(text, close)
        one_line = text.find("\n", p, close) < 0
        if kind != "call" or not one_line or _CODE_AFTER.match(text, close, end):
            return Segment(kind, p, end)
        pos = end + 1  # a sentence that begins with a function's name
    return None


def segments(text: str, kinds: tuple[str, ...] = ALL_KINDS, limit: int | None = None) -> list[Segment]:
    """Every call start in the text, in order (for kinds whose end the scanner decides), at most
    `limit` of them."""
    found = []
    pos = 0
    while (limit is None or len(found) < limit) and (segment := next_segment(text, pos, kinds)) is not None:
        found.append(segment)
        pos = segment.end
    return found


def partition(text: str, found: list[Segment]) -> tuple[str, str]:
    """(source, content): the source keeps the segments where they stand, every other line blank
    (so a parser's line numbers are the answer's), each segment's first-line indentation dropped;
    the content is everything else, without the lines the segments took."""
    source: list[str] = []
    content: list[str] = []
    pos = kept = 0  # where the source and the content go on from
    for segment in found:
        source.append("\n" * text.count("\n", pos, segment.start))
        source.append(text[segment.start : segment.end])
        content.append(text[kept : segment.start].rstrip(" \t"))
        pos = segment.end
        kept = pos + 1 if text.startswith("\n", pos) else pos  # the segment's line goes whole
    content.append(text[kept:])
    return "".join(source), "".join(content)


_EMPTY_FENCE = re.compile(r"```[\w+-]*[ \t]*\r?\n\s*```[ \t]*")


def tidy(content: str) -> str:
    """Content left once the calls are cut out: without the fences that held only calls."""
    return _EMPTY_FENCE.sub("", content).strip()

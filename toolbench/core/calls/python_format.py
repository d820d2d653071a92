"""The `python` call format: ToolBench-style lines such as `API.set_location("Oakland, CA")`.

The text is read with `ast.parse` and walked against the whitelist of `ast_reader`: calls of
functions (optionally on a receiver such as `API.`), keyword or positional arguments, literal
values, the value constructors the tools declare (`Date(4, 12, 2023)`), and simple assignments of
those values to names. Nothing is ever evaluated: a node outside the whitelist is a
`CallParseError` that says where and why. Its error kinds are the historical bare ones
(`syntax`, `unsupported`, `undefined_name`, ...).
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from typing import Any

import orjson

from toolbench.core.calls.ast_reader import AstCallReader, check_bounds, parse_source, where
from toolbench.core.calls.base import (
    MAX_CALLS,
    MAX_CODE_SYMBOLS,
    MAX_NESTING,
    FormatContext,
    check_calls,
    check_length,
    parse_with_fences,
)
from toolbench.core.calls.fast_python import read_line
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Call, Program

_CALL_LINE = re.compile(r"^[ \t]*(?:[^\W\d]\w*[ \t]*=[ \t]*)?[^\W\d][\w.]*\(", re.MULTILINE)


class PythonFormat:
    name = "python"

    def __init__(self, context: FormatContext | None = None, receiver: str = "API"):
        self.context = context or FormatContext.empty()
        self.receiver = receiver
        self.reader = AstCallReader(self.context)
        self._by_format = {c.format: c for c in self.context.constructors.values()}
        self._line_cache: dict[str, _Line] = {}

    # ------------------------------------------------------------------ render
    def render(self, program: Program) -> str:
        return "\n".join(self.render_call(call) for call in program)

    def render_call(self, call: Call) -> str:
        spec = self.context.specs.get(call.name)
        properties = spec.parameters.get("properties", {}) if spec else {}
        prefix = f"{self.receiver}." if self.receiver else ""
        if spec and len(spec.parameter_names) == 1 and list(call.arguments) == spec.parameter_names:
            (value,) = call.arguments.values()
            return f"{prefix}{call.name}({self._value(value, properties.get(spec.parameter_names[0]))})"
        return f"{prefix}{call.name}({self.keyword_arguments(call, properties)})"

    def keyword_arguments(self, call: Call, properties: dict[str, Any] | None = None) -> str:
        """`a=1, b="x"`: the call's arguments as python keywords (values as python literals)."""
        parts = []
        properties = properties or {}
        for key, value in call.arguments.items():
            if not key.isidentifier() or keyword.iskeyword(key):
                raise ValueError(f"{call.name}: argument name {key!r} cannot be written as a python keyword")
            parts.append(f"{key}={self._value(value, properties.get(key))}")
        return ", ".join(parts)

    def literal(self, value: Any) -> str:
        """A JSON value written as python source (what templates use for action arguments)."""
        return self._value(value, None)

    def _value(self, value: Any, schema: dict[str, Any] | None) -> str:
        kind = type(value)  # the usual values first, when no constructor can spell them
        if (kind is str or kind is int or kind is float) and (
            not self._by_format or not schema or "format" not in schema
        ):
            return _string(value) if kind is str else repr(value)
        if schema and "format" in schema and schema["format"] in self._by_format and value is not None:
            return self._by_format[schema["format"]].render(value)
        if value is None:
            return "None"
        if value is True:
            return "True"
        if value is False:
            return "False"
        if isinstance(value, str):
            return _string(value)
        if isinstance(value, (int, float)):
            return repr(value)
        items = (schema or {}).get("items")
        if isinstance(value, list):
            return "[" + ", ".join(self._value(item, items) for item in value) + "]"
        properties = (schema or {}).get("properties", {})
        return (
            "{"
            + ", ".join(f"{_string(k)}: {self._value(v, properties.get(k))}" for k, v in value.items())
            + "}"
        )

    # ------------------------------------------------------------------- parse
    def parse(self, text: str) -> Program:
        check_length(text, "")
        return parse_with_fences(self.parse_lines, text)

    def split(self, text: str) -> tuple[str, Program]:
        """The whole text is read as a program: no free-text content."""
        return "", self.parse(text)

    def parse_lines(self, body: str) -> Program:
        """The text as one python program (no fence handling)."""
        fast = self._parse_fast(body)
        if fast is not None:
            return fast
        return self.parse_full(body)

    def parse_full(self, body: str) -> Program:
        """`parse_lines` through `ast` alone (what the fast path is held to)."""
        if body.count("\n") >= MAX_CALLS and len(_CALL_LINE.findall(body)) > MAX_CALLS:
            check_calls(MAX_CALLS + 1, "")
        tree = parse_source(body)
        names: dict[str, Any] = {}
        calls: list[Call] = []
        lines = body.split("\n")
        reader = self.reader
        try:
            for statement in tree.body:
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                    reader.name_reads = 0
                    calls.append(reader.call(statement.value, names))
                    check_calls(len(calls), "")
                    if (
                        not reader.name_reads
                        and statement.lineno == statement.end_lineno
                        and statement.col_offset == 0
                    ):
                        line = lines[statement.lineno - 1].encode()[
                            : statement.end_col_offset
                        ]  # offsets are bytes
                        self._remember(line.decode(errors="replace"), calls[-1])
                elif isinstance(statement, ast.Assign):
                    reader.assign(statement, names)
                else:
                    raise CallParseError(
                        "unsupported",
                        f"{where(statement)}: only calls and simple assignments are allowed, got {type(statement).__name__}",
                    )
        except RecursionError:
            raise CallParseError("unsupported", "values are nested too deeply") from None
        return Program(calls)

    # A line such as `API.set_origin(Loc("Paris"))` recurs across thousands of programs, and
    # alternative labels are mostly the same lines reordered. A line that is one self-contained
    # call (no assigned names) parses the same wherever it stands, so its result is remembered.
    # A line not remembered is read by `fast_python.read_line` when it is in the narrow grammar
    # the templates emit (`API.name(kw=literal, ...)`, JSON-like literals). A program whose
    # every line is one or the other skips `ast.parse`; anything else takes the full path, as
    # does a program the full path would refuse for its size (it says why).
    _CACHE_MAX = 1 << 16

    def _remember(self, line: str, call: Call, owned: bool = False) -> _Line | None:
        """Remember the call `line` spells. `owned`: the cache may keep `call` itself (a call no
        caller changes: `parse_shared`'s); otherwise it keeps a copy."""
        entry = _Line.of(call, owned)
        if entry is not None:
            if len(self._line_cache) >= self._CACHE_MAX:
                self._line_cache.clear()
            self._line_cache[line] = entry
        return entry

    def _parse_fast(self, body: str) -> Program | None:
        found = self._read_fast(body, False, False)
        return None if found is None else Program(found[0])

    def parse_shared(self, text: str, canonical: bool = False) -> tuple[list[Call], str | None]:
        """`parse(text)` for a reader that never changes the calls it gets (the generator, which
        reads every label of every sample): the call of a remembered line whose arguments are
        all scalars is one object shared by every program that has the line, not a fresh copy.
        With `canonical`, also `render(program)`, from each line's remembered rendering (the
        generator writes the gold program so). Raises what `parse` raises."""
        check_length(text, "")
        found = self._read_fast(text, True, canonical)
        if found is not None:
            return found
        program = self.parse(text)
        return program.root, (self.render(program) if canonical else None)

    def _read_fast(self, body: str, shared: bool, canonical: bool) -> tuple[list[Call], str | None] | None:
        """The calls of `body` when every line is remembered or in the narrow grammar (fresh
        objects unless `shared`), and with `canonical` its rendering; None otherwise."""
        if len(body) > MAX_CODE_SYMBOLS or body.count("(") + body.count("[") + body.count("{") > MAX_NESTING:
            try:  # what the full path checks first: a program it refuses goes there
                check_bounds(body)
            except CallParseError:
                return None
        calls: list[Call] = []
        texts: list[str] = []
        cache, specs = self._line_cache, self.context.specs
        for line in body.split("\n"):
            line = line.rstrip(" \t\r")  # blanks python ignores (a lone \r ends a line too)
            if not line:
                continue
            hit = cache.get(line)
            if hit is None:
                call = read_line(line, specs)
                if call is None:
                    return None
                hit = self._remember(line, call, shared)
                if hit is None:  # not remembered (an int beyond 64 bits in a nested value)
                    calls.append(call)
                    if canonical:
                        texts.append(self.render_call(call))
                    continue
                calls.append(hit.call if shared and hit.call is not None else call)
            else:
                calls.append(hit.call if shared and hit.call is not None else hit.fresh())
            if canonical:
                text = hit.text
                if text is None:
                    text = hit.text = self.render_call(calls[-1])
                texts.append(text)
        if not calls or len(calls) > MAX_CALLS:
            return None  # the full path says why
        return calls, ("\n".join(texts) if canonical else None)


_SCALARS = frozenset({str, int, float, bool, type(None)})


class _Line:
    """A remembered line: its call. Arguments that are all scalars are kept as a Call of their
    own (a shallow copy of its arguments is a fresh one; `parse_shared` hands out the Call
    itself), others as JSON text, decoded afresh for every program (exact size, and no value
    shared between programs). `text`: the call's canonical rendering, once asked for."""

    __slots__ = ("name", "json", "call", "text")

    def __init__(self, name: str, json: str | None, call: Call | None):
        self.name, self.json, self.call = name, json, call
        self.text: str | None = None

    @classmethod
    def of(cls, call: Call, owned: bool = False) -> _Line | None:
        """The entry of a call (`owned`: it may keep `call` itself), or None for one that cannot
        be remembered (a nested int beyond 64 bits, which orjson cannot write)."""
        arguments = call.arguments
        for value in arguments.values():
            if type(value) not in _SCALARS:
                try:
                    return cls(call.name, orjson.dumps(arguments).decode(), None)  # str: exact size
                except TypeError:
                    return None
        return cls(call.name, None, call if owned else Call.trusted(call.name, dict(arguments)))

    def fresh(self) -> Call:
        if self.call is not None:
            return Call.trusted(self.name, dict(self.call.arguments))
        return Call.trusted(self.name, orjson.loads(self.json))  # type: ignore[arg-type]


# what `json.dumps(ensure_ascii=False)` escapes (quote, backslash, control characters), and lone
# surrogates: a string with none of them is written as it is, between quotes
_ESCAPED = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')


def _string(value: str) -> str:
    """A double-quoted python string literal (the ToolBench look). JSON escaping is valid python
    except for lone surrogates, which cannot be source text: those fall back to repr()."""
    if _ESCAPED.search(value) is None:
        return f'"{value}"'
    rendered = json.dumps(value, ensure_ascii=False)
    try:
        rendered.encode("utf-8")
    except UnicodeEncodeError:
        return repr(value)
    return rendered

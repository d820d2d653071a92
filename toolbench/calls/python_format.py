"""The `python` call format: ToolBench-style lines such as `API.set_location("Oakland, CA")`.

The text is read with `ast.parse` and walked against a whitelist: calls of functions (optionally
on a receiver such as `API.`), keyword or positional arguments, literal values, the value
constructors the tools declare (`Date(4, 12, 2023)`), and simple assignments of those values to
names. Nothing is ever evaluated: a node outside the whitelist is a `CallParseError` that says
where and why.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import warnings
from typing import Any

import orjson

from toolbench.calls.base import FormatContext, parse_with_fences
from toolbench.errors import CallParseError
from toolbench.records import Call, FunctionSpec, Program

_PARSE_FAILURES = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)


def _where(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')}, col {getattr(node, 'col_offset', -1) + 1}"


class PythonFormat:
    name = "python"

    def __init__(self, context: FormatContext | None = None, receiver: str = "API"):
        self.context = context or FormatContext.empty()
        self.receiver = receiver
        self._by_format = {c.format: c for c in self.context.constructors.values()}
        self._line_cache: dict[str, tuple[str, str]] = {}
        self._name_reads = 0

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
        parts = []
        for key, value in call.arguments.items():
            if not key.isidentifier() or keyword.iskeyword(key):
                raise ValueError(f"{call.name}: argument name {key!r} cannot be written as a python keyword")
            parts.append(f"{key}={self._value(value, properties.get(key))}")
        return f"{prefix}{call.name}({', '.join(parts)})"

    def literal(self, value: Any) -> str:
        """A JSON value written as python source (what templates use for action arguments)."""
        return self._value(value, None)

    def _value(self, value: Any, schema: dict[str, Any] | None) -> str:
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
        return parse_with_fences(self._parse_body, text)

    def _parse_body(self, body: str) -> Program:
        cached = self._parse_from_cache(body)
        if cached is not None:
            return cached
        try:
            with warnings.catch_warnings():
                # a model's `"C:\yes"` would print "invalid escape sequence" on the user's console
                warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
                tree = ast.parse(body, mode="exec")
        except SyntaxError as error:
            raise CallParseError("syntax", f"line {error.lineno}, col {error.offset}: {error.msg}") from None
        except _PARSE_FAILURES as error:
            raise CallParseError("syntax", f"unreadable program: {error}") from None
        names: dict[str, Any] = {}
        calls: list[Call] = []
        lines = body.split("\n")
        try:
            for statement in tree.body:
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                    self._name_reads = 0
                    calls.append(self._call(statement.value, names))
                    if (
                        not self._name_reads
                        and statement.lineno == statement.end_lineno
                        and statement.col_offset == 0
                    ):
                        line = lines[statement.lineno - 1].encode()[
                            : statement.end_col_offset
                        ]  # offsets are bytes
                        self._remember(line.decode(errors="replace"), calls[-1])
                elif isinstance(statement, ast.Assign):
                    self._assign(statement, names)
                else:
                    raise CallParseError(
                        "unsupported",
                        f"{_where(statement)}: only calls and simple assignments are allowed, got {type(statement).__name__}",
                    )
        except RecursionError:
            raise CallParseError("unsupported", "values are nested too deeply") from None
        return Program(calls)

    # A line such as `API.set_origin(Loc("Paris"))` recurs across thousands of programs, and
    # alternative labels are mostly the same lines reordered. A line that is one self-contained
    # call (no assigned names) parses the same wherever it stands, so its result is remembered;
    # a program whose every line is remembered skips `ast.parse`. Anything else takes the full path.
    _CACHE_MAX = 1 << 16

    def _remember(self, line: str, call: Call) -> None:
        if len(self._line_cache) >= self._CACHE_MAX:
            self._line_cache.clear()
        self._line_cache[line] = (call.name, orjson.dumps(call.arguments).decode())  # str: exact size

    def _parse_from_cache(self, body: str) -> Program | None:
        calls = []
        for line in body.split("\n"):
            line = line.rstrip()
            if not line:
                continue
            hit = self._line_cache.get(line)
            if hit is None:
                return None
            calls.append(Call.trusted(hit[0], orjson.loads(hit[1])))  # a fresh copy every time
        return Program(calls) if calls else None

    def _assign(self, statement: ast.Assign, names: dict[str, Any]) -> None:
        if len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
            raise CallParseError("unsupported", f"{_where(statement)}: assign to exactly one plain name")
        if (
            isinstance(statement.value, ast.Call)
            and self._function_name(statement.value) not in self.context.constructors
        ):
            raise CallParseError(
                "unsupported",
                f"{_where(statement)}: only values can be assigned, not the result of a function call",
            )
        names[statement.targets[0].id] = self._literal(statement.value, names)

    def _function_name(self, node: ast.Call) -> str | None:
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return func.attr
        return None

    def _call(self, node: ast.Call, names: dict[str, Any]) -> Call:
        name = self._function_name(node)
        if name is None:
            raise CallParseError("unsupported", f"{_where(node)}: call a function by name, e.g. API.search()")
        arguments: dict[str, Any] = {}
        if node.args:
            arguments.update(self._positional(name, node, names))
        for kw in node.keywords:
            if kw.arg is None:
                raise CallParseError(
                    "unsupported", f"{_where(kw.value)}: ** unpacking is not allowed in {name}()"
                )
            if kw.arg in arguments:
                raise CallParseError("duplicate_argument", f"{_where(node)}: {name}() got '{kw.arg}' twice")
            arguments[kw.arg] = self._literal(kw.value, names)
        return Call.trusted(name, arguments)  # _literal admits JSON values only

    def _positional(self, name: str, node: ast.Call, names: dict[str, Any]) -> dict[str, Any]:
        spec: FunctionSpec | None = self.context.specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self.context.specs)) or "none known"
            raise CallParseError(
                "unknown_function",
                f"{_where(node)}: positional arguments need a known function; '{name}' is not one of: {known}",
            )
        params = spec.parameter_names
        if len(node.args) > len(params):
            raise CallParseError(
                "too_many_positional",
                f"{_where(node)}: {name}() takes {len(params)} argument(s), got {len(node.args)}",
            )
        bound = {}
        for param, arg in zip(params, node.args, strict=False):
            if isinstance(arg, ast.Starred):
                raise CallParseError("unsupported", f"{_where(arg)}: * unpacking is not allowed in {name}()")
            bound[param] = self._literal(arg, names)
        return bound

    def _literal(self, node: ast.AST, names: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or isinstance(value, (bool, int, str)):
                return value
            if isinstance(value, float):
                if not math.isfinite(value):
                    raise CallParseError("value", f"{_where(node)}: {value!r} is not a finite number")
                return value
            raise CallParseError(
                "unsupported", f"{_where(node)}: {type(value).__name__} literals are not allowed"
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self._literal(node.operand, names)
            if (
                isinstance(operand, bool)
                or not isinstance(operand, (int, float))
                or not isinstance(node.operand, ast.Constant)
            ):
                raise CallParseError("unsupported", f"{_where(node)}: a sign goes only before a number")
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._literal(item, names) for item in node.elts]
        if isinstance(node, ast.Dict):
            result = {}
            for key, value in zip(node.keys, node.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    raise CallParseError("unsupported", f"{_where(value)}: dictionary keys must be strings")
                result[key.value] = self._literal(value, names)
            return result
        if isinstance(node, ast.Name):
            if node.id in names:
                self._name_reads += 1
                return names[node.id]
            raise CallParseError(
                "undefined_name", f"{_where(node)}: '{node.id}' is not defined (quote strings)"
            )
        if isinstance(node, ast.Call):
            return self._construct(node, names)
        raise CallParseError("unsupported", f"{_where(node)}: {type(node).__name__} is not a literal value")

    def _construct(self, node: ast.Call, names: dict[str, Any]) -> Any:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        constructor = self.context.constructors.get(name) if name else None
        if constructor is None:
            known = ", ".join(sorted(self.context.constructors)) or "none"
            raise CallParseError(
                "unsupported",
                f"{_where(node)}: a call is not a value; value constructors available here: {known}",
            )
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(
            kw.arg is None for kw in node.keywords
        ):
            raise CallParseError("unsupported", f"{_where(node)}: unpacking is not allowed in {name}()")
        args = [self._literal(arg, names) for arg in node.args]
        kwargs = {kw.arg: self._literal(kw.value, names) for kw in node.keywords}
        try:
            return constructor.build(args, kwargs)
        except (ValueError, TypeError) as error:
            raise CallParseError("value", f"{_where(node)}: {name}(…): {error}") from None


def _string(value: str) -> str:
    """A double-quoted python string literal (the ToolBench look). JSON escaping is valid python
    except for lone surrogates, which cannot be source text: those fall back to repr()."""
    rendered = json.dumps(value, ensure_ascii=False)
    try:
        rendered.encode("utf-8")
    except UnicodeEncodeError:
        return repr(value)
    return rendered

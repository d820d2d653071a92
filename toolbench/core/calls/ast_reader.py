"""The python-syntax readers' shared core (`python` and `pythonic` formats).

`parse_source` turns text into an `ast.Module` after bounding the work (bracket nesting and the
number of symbols, see base.py), with the warnings a model's odd escapes would print silenced.
`AstCallReader` walks calls against a whitelist: calls of functions by name (optionally on a
receiver such as `API.`), keyword or positional arguments (positional ones bound through the
FormatContext's specs), literal values, the value constructors the tools declare
(`Date(4, 12, 2023)`), and names assigned earlier. Nothing is ever evaluated: a node outside the
whitelist is a `CallParseError` that says where and why.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from typing import Any

from toolbench.core.calls.base import MAX_CODE_SYMBOLS, MAX_NESTING, FormatContext
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Call, FunctionSpec

_PARSE_FAILURES = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)
_BRACKETS = re.compile(r"[()\[\]{}]")
# One token of `count_tokens`: a simple string literal not glued to a prefix or another quote (its
# contents make no node), a word or number, or any other character that is not blank. Possessive
# quantifiers: an unclosed quote fails in one pass over its line, without backtracking state.
_TOKEN = re.compile(
    r"""(?<![\w'"\\])(?:'[^'\\\n]*+(?:\\.[^'\\\n]*+)*+'|"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+")|\w+|[^\w\s]"""
)


def where(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')}, col {getattr(node, 'col_offset', -1) + 1}"


def count_tokens(source: str, limit: int) -> int:
    """An upper bound on the tokens `ast.parse` would read, counted up to `limit + 1`: every word
    or number, every simple string literal (one token, as its contents make no node) and every
    other character that is not blank. An f-string's or a triple-quoted string's contents are
    counted character by character (their `{...}` parts are parsed into nodes)."""
    if len(source) <= limit:  # every token is at least one character long
        return len(source)
    count = 0
    for _ in _TOKEN.finditer(source):
        count += 1
        if count > limit:
            break
    return count


def check_bounds(source: str) -> None:
    """Refuse, before `ast.parse`, sources that would cost it deep recursion or much memory.

    `ast` spends 0.5 to 1.3 KB per token (its C tokens and nodes, then the Python node objects)
    whatever the nesting, so the number of tokens, not the length, bounds its memory: at most
    MAX_CODE_SYMBOLS of them keep one parse under 10x the longest answer (MAX_ANSWER_CHARS).
    Brackets inside string literals count towards nesting too: a bound on the raw text is an
    upper bound that needs no tokenizer, and no real call nests MAX_NESTING brackets, quoted or
    not."""
    tokens = count_tokens(source, MAX_CODE_SYMBOLS)
    if tokens > MAX_CODE_SYMBOLS:
        raise CallParseError(
            "too_complex", f"the code has more than {MAX_CODE_SYMBOLS:,} symbols; at most that many are read"
        )
    if source.count("(") + source.count("[") + source.count("{") <= MAX_NESTING:
        return  # too few brackets to nest too deep
    depth = deepest = 0
    for match in _BRACKETS.finditer(source):
        if match.group() in "([{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_NESTING:
                    line = source.count("\n", 0, match.start()) + 1
                    raise CallParseError(
                        "too_deep", f"line {line}: brackets nest deeper than {MAX_NESTING} levels"
                    )
        elif depth:
            depth -= 1


def parse_source(source: str) -> ast.Module:
    check_bounds(source)
    try:
        with warnings.catch_warnings():
            # a model's `"C:\yes"` would print "invalid escape sequence" on the user's console
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            return ast.parse(source, mode="exec")
    except SyntaxError as error:
        raise CallParseError("syntax", f"line {error.lineno}, col {error.offset}: {error.msg}") from None
    except _PARSE_FAILURES as error:
        raise CallParseError("syntax", f"unreadable program: {error}") from None


JSON_NAMES = {"true": True, "false": False, "null": None}  # models mix JSON into Python


def python_literal(source: str) -> Any:
    """The JSON value a Python literal spells (`{'name': 'f', 'arguments': {'a': True}}`, as
    Hermes-2-Pro and some Llama answers write their "JSON"); `true`/`false`/`null` accepted."""
    tree = parse_source(source)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        raise CallParseError("syntax", "not one literal value")
    try:
        return AstCallReader(FormatContext.empty()).literal(tree.body[0].value, dict(JSON_NAMES))
    except RecursionError:
        raise CallParseError("unsupported", "values are nested too deeply") from None


class AstCallReader:
    """Calls and literal values out of ast nodes, against the whitelist above."""

    def __init__(self, context: FormatContext):
        self.context = context
        self.name_reads = 0  # how many assigned names the last calls read (the line cache's test)

    def function_name(self, node: ast.Call) -> str | None:
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return func.attr
        return None

    def assign(self, statement: ast.Assign, names: dict[str, Any]) -> None:
        if len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
            raise CallParseError("unsupported", f"{where(statement)}: assign to exactly one plain name")
        if (
            isinstance(statement.value, ast.Call)
            and self.function_name(statement.value) not in self.context.constructors
        ):
            raise CallParseError(
                "unsupported",
                f"{where(statement)}: only values can be assigned, not the result of a function call",
            )
        names[statement.targets[0].id] = self.literal(statement.value, names)

    def call(self, node: ast.Call, names: dict[str, Any]) -> Call:
        name = self.function_name(node)
        if name is None:
            raise CallParseError("unsupported", f"{where(node)}: call a function by name, e.g. API.search()")
        arguments: dict[str, Any] = {}
        if node.args:
            arguments.update(self._positional(name, node, names))
        for kw in node.keywords:
            if kw.arg is None:
                raise CallParseError(
                    "unsupported", f"{where(kw.value)}: ** unpacking is not allowed in {name}()"
                )
            if kw.arg in arguments:
                raise CallParseError("duplicate_argument", f"{where(node)}: {name}() got '{kw.arg}' twice")
            arguments[kw.arg] = self.literal(kw.value, names)
        return Call.trusted(name, arguments)  # literal() admits JSON values only

    def _positional(self, name: str, node: ast.Call, names: dict[str, Any]) -> dict[str, Any]:
        spec: FunctionSpec | None = self.context.specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self.context.specs)) or "none known"
            raise CallParseError(
                "unknown_function",
                f"{where(node)}: positional arguments need a known function; '{name}' is not one of: {known}",
            )
        params = spec.parameter_names
        if len(node.args) > len(params):
            raise CallParseError(
                "too_many_positional",
                f"{where(node)}: {name}() takes {len(params)} argument(s), got {len(node.args)}",
            )
        bound = {}
        for param, arg in zip(params, node.args, strict=False):
            if isinstance(arg, ast.Starred):
                raise CallParseError("unsupported", f"{where(arg)}: * unpacking is not allowed in {name}()")
            bound[param] = self.literal(arg, names)
        return bound

    def literal(self, node: ast.AST, names: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or isinstance(value, (bool, int, str)):
                return value
            if isinstance(value, float):
                if not math.isfinite(value):
                    raise CallParseError("value", f"{where(node)}: {value!r} is not a finite number")
                return value
            raise CallParseError(
                "unsupported", f"{where(node)}: {type(value).__name__} literals are not allowed"
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.literal(node.operand, names)
            if (
                isinstance(operand, bool)
                or not isinstance(operand, (int, float))
                or not isinstance(node.operand, ast.Constant)
            ):
                raise CallParseError("unsupported", f"{where(node)}: a sign goes only before a number")
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.literal(item, names) for item in node.elts]
        if isinstance(node, ast.Dict):
            result = {}
            for key, value in zip(node.keys, node.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    raise CallParseError("unsupported", f"{where(value)}: dictionary keys must be strings")
                result[key.value] = self.literal(value, names)
            return result
        if isinstance(node, ast.Name):
            if node.id in names:
                self.name_reads += 1
                return names[node.id]
            raise CallParseError(
                "undefined_name", f"{where(node)}: '{node.id}' is not defined (quote strings)"
            )
        if isinstance(node, ast.Call):
            return self._construct(node, names)
        raise CallParseError("unsupported", f"{where(node)}: {type(node).__name__} is not a literal value")

    def _construct(self, node: ast.Call, names: dict[str, Any]) -> Any:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        constructor = self.context.constructors.get(name) if name else None
        if constructor is None:
            known = ", ".join(sorted(self.context.constructors)) or "none"
            raise CallParseError(
                "unsupported",
                f"{where(node)}: a call is not a value; value constructors available here: {known}",
            )
        if any(isinstance(arg, ast.Starred) for arg in node.args) or any(
            kw.arg is None for kw in node.keywords
        ):
            raise CallParseError("unsupported", f"{where(node)}: unpacking is not allowed in {name}()")
        args = [self.literal(arg, names) for arg in node.args]
        kwargs = {kw.arg: self.literal(kw.value, names) for kw in node.keywords}
        try:
            return constructor.build(args, kwargs)
        except (ValueError, TypeError) as error:
            raise CallParseError("value", f"{where(node)}: {name}(…): {error}") from None

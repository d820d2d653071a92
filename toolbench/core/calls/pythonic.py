"""The `pythonic` call format: a Python list of calls with keyword arguments, as the Llama 3.2 /
Llama 4 pythonic tool templates, vLLM's `pythonic` parser and BFCL write them:

    [get_weather(city="Paris"), search(q="x", limit=3)]

`render` writes exactly that (values as Python literals). Parsing reads it with the python
format's ast whitelist (`ast_reader`; nothing is evaluated) and also takes:

- a `<|python_start|>`…`<|python_end|>` (Llama 4) or `<|python_tag|>` wrapper, and trailing
  end-of-turn tokens;
- text around the list (content), the list in a Markdown fence, one list per line;
- llama-models' way of joining calls, `[f(a=1)][g(b=2)]`, and bare call lines `f(a=1)`;
- `true` / `false` / `null` for `True` / `False` / `None` (models mix JSON into Python);
- positional arguments, bound through the FormatContext's specs like the python format.

Errors are `pythonic:<kind>` (`pythonic:syntax`, `pythonic:unsupported`, …).
"""

from __future__ import annotations

import ast
from typing import Any

from toolbench.core.calls.ast_reader import JSON_NAMES, AstCallReader, parse_source, where
from toolbench.core.calls.base import (
    MAX_CALLS,
    FormatContext,
    check_calls,
    check_length,
    kind_prefix,
    namespaced,
)
from toolbench.core.calls.llama import unwrap
from toolbench.core.calls.python_format import PythonFormat
from toolbench.core.calls.scan import partition, segments, tidy
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Call, Program


class PythonicFormat:
    name = "pythonic"

    def __init__(self, context: FormatContext | None = None):
        self.context = context or FormatContext.empty()
        self.reader = AstCallReader(self.context)
        self._literals = PythonFormat(receiver="")

    def render(self, program: Program) -> str:
        if not len(program):
            return ""
        return (
            "["
            + ", ".join(f"{call.name}({self._literals.keyword_arguments(call)})" for call in program)
            + "]"
        )

    def parse(self, text: str) -> Program:
        return self.split(text)[1]

    def split(self, text: str) -> tuple[str, Program]:
        prefix = kind_prefix(self.name)
        check_length(text, prefix)
        before, body, wrapped = unwrap(text)
        with namespaced(prefix):
            found = segments(body, ("list", "call"), limit=MAX_CALLS + 1)
            if not found:
                if wrapped:
                    shown = body.strip()[:40]
                    raise CallParseError(
                        "syntax",
                        f"after the python tag: expected a list of calls, got {shown!r}"
                        if shown
                        else "after the python tag: no call",
                    )
                return (before + body).strip(), Program([])
            check_calls(len(found), "")
            source, content = partition(body, found)
            return tidy(before + content), Program(self.read(source))

    def read(self, source: str) -> list[Call]:
        """The calls of python source made of call lists and call lines."""
        tree = parse_source(source)
        nodes: list[ast.Call] = []
        for statement in tree.body:
            if not isinstance(statement, ast.Expr):
                raise CallParseError(
                    "unsupported",
                    f"{where(statement)}: expected a list of calls, got {type(statement).__name__}",
                )
            nodes.extend(_call_nodes(statement.value))
            check_calls(len(nodes), "")
        names: dict[str, Any] = dict(JSON_NAMES)
        try:
            return [self.reader.call(node, names) for node in nodes]
        except RecursionError:
            raise CallParseError("unsupported", "values are nested too deeply") from None


def _call_nodes(expression: ast.expr) -> list[ast.Call]:
    """The calls of `[f(), g()]`, of `[f()][g()]` (llama-models joins calls so: a list subscripted
    by calls), or of a bare `f()`."""
    slices = []
    node = expression
    while isinstance(node, ast.Subscript):
        slices.append(node.slice)
        node = node.value
    if isinstance(node, ast.Call) and node is expression:
        return [node]
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise CallParseError(
            "unsupported", f"{where(node)}: expected a list of calls, got {type(node).__name__}"
        )
    elements = list(node.elts)
    for part in reversed(slices):
        elements.extend(part.elts if isinstance(part, ast.Tuple) else [part])
    for element in elements:
        if not isinstance(element, ast.Call):
            raise CallParseError(
                "unsupported", f"{where(element)}: expected a call, got {type(element).__name__}"
            )
    return elements

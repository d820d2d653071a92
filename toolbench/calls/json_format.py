"""The `json` call format: OpenAI-style `[{"name": …, "arguments": {…}}]`.

Parsing is forgiving about the shapes models actually emit (a bare object, a list,
`{"tool_calls": […]}`, `{"type": "function", "function": {…}}`, `arguments` as a JSON string,
`parameters` for `arguments`, code fences, one object per line) and strict about everything else.
"""

from __future__ import annotations

import json
from typing import Any

from toolbench.calls.base import FormatContext, parse_with_fences
from toolbench.errors import CallParseError
from toolbench.records import Call, Program


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


class JsonFormat:
    name = "json"

    def __init__(self, context: FormatContext | None = None):
        self.context = context or FormatContext.empty()

    def render(self, program: Program) -> str:
        return json.dumps([call.model_dump() for call in program], ensure_ascii=False)

    def parse(self, text: str) -> Program:
        return parse_with_fences(self._parse_body, text)

    def _parse_body(self, text: str) -> Program:
        body = text.strip()
        if not body:
            return Program([])
        try:
            data = _loads(body)
        except (ValueError, RecursionError) as whole_error:
            data = self._loads_lines(body, whole_error)
        items = self._items(data)
        return Program([self._call(item, i) for i, item in enumerate(items)])

    def parse_items(self, items: list[Any]) -> Program:
        """Calls that arrive already structured (OpenAI `tool_calls`), arguments maybe a JSON string."""
        return Program([self._call(item, i) for i, item in enumerate(items)])

    @staticmethod
    def _loads_lines(body: str, whole_error: Exception) -> list[Any]:
        """One JSON object per line is a common answer shape; try it before giving up."""
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) < 2:
            raise CallParseError("json", f"not valid JSON: {whole_error}") from None
        items = []
        for line in lines:
            try:
                items.append(_loads(line))
            except (ValueError, RecursionError):
                raise CallParseError("json", f"not valid JSON: {whole_error}") from None
        return items

    @staticmethod
    def _items(data: Any) -> list[Any]:
        if isinstance(data, dict) and "tool_calls" in data:
            data = data["tool_calls"]
            if data is None:
                return []
        if isinstance(data, dict):
            return [data]
        if isinstance(data, list):
            return data
        raise CallParseError("shape", f"expected a call object or a list of calls, got {type(data).__name__}")

    @staticmethod
    def _call(item: Any, index: int) -> Call:
        where = f"call {index + 1}"
        if not isinstance(item, dict):
            raise CallParseError("shape", f"{where}: expected an object, got {type(item).__name__}")
        if isinstance(item.get("function"), dict):
            item = item["function"]
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise CallParseError("shape", f"{where}: missing a string 'name'")
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = _loads(arguments) if arguments.strip() else {}
            except (ValueError, RecursionError) as error:
                raise CallParseError(
                    "arguments", f"{where} ({name}): arguments are not valid JSON: {error}"
                ) from None
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise CallParseError(
                "shape", f"{where} ({name}): 'arguments' must be an object, got {type(arguments).__name__}"
            )
        return Call.trusted(name, arguments)  # json.loads without NaN/Infinity yields JSON values only

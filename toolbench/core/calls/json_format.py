"""The `json` call format: OpenAI-style `[{"name": …, "arguments": {…}}]`.

Parsing is forgiving about the shapes models actually emit (a bare object, a list,
`{"tool_calls": […]}`, `{"type": "function", "function": {…}}`, `arguments` as a JSON string,
`parameters` for `arguments`, code fences, one object per line) and strict about everything else.
(The native readers built on `read_json_value` also take a Python-literal object, `{'name': …}`.)
Its error kinds are the historical bare ones (`json`, `shape`, `arguments`).

`read_json_values` and `JsonFormat.calls` are what the native formats (hermes, llama-json,
mistral, auto) use to read the JSON inside their markers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from toolbench.core.calls.ast_reader import python_literal
from toolbench.core.calls.base import MAX_CALLS, FormatContext, check_calls, check_length, parse_with_fences
from toolbench.core.calls.scan import json_call_starts, statement_close
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Call, Program

_SEPARATOR = re.compile(r"\s*[;,]?\s*")
_SPACE = re.compile(r"\s*")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def read_json_value(text: str, start: int) -> tuple[Any, int]:
    """One JSON value starting at `start` (whitespace skipped) and the index after it. An object
    or list that is not JSON but a Python literal (single quotes, `True`, `None`) is read as one;
    if it is neither, the error is the JSON decoder's."""
    start = _SPACE.match(text, start).end()
    try:
        return _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as error:
        failure = CallParseError("json", f"not valid JSON: {error}")
    except (ValueError, RecursionError, MemoryError) as error:
        line = text.count("\n", 0, start) + 1
        failure = CallParseError(
            "json", f"not valid JSON (from line {line}): {error or type(error).__name__}"
        )
    if text.startswith(("{", "["), start):
        end, closed = statement_close(text, start)
        if closed:
            try:
                return python_literal(text[start:end]), end
            except CallParseError:
                pass
    raise failure


def read_json_values(text: str, start: int) -> tuple[list[Any], int]:
    """Call-shaped JSON values from `start` on: one, or several separated by whitespace, `;` or
    `,` (Llama writes `{…}; {…}`, llama-models `{…}{…}`). Returns them and the index after the
    last. A value that starts but does not parse is a CallParseError."""
    values = []
    while True:
        value, end = read_json_value(text, start)
        values.append(value)
        if len(values) > MAX_CALLS:
            check_calls(len(values), "")
        following = _SEPARATOR.match(text, end).end()
        if following >= len(text) or text[following] not in "[{" or not json_call_starts(text, following):
            return values, end
        start = following


class JsonFormat:
    name = "json"

    def __init__(self, context: FormatContext | None = None):
        self.context = context or FormatContext.empty()

    def render(self, program: Program) -> str:
        return json.dumps([call.model_dump() for call in program], ensure_ascii=False)

    def parse(self, text: str) -> Program:
        check_length(text, "")
        return parse_with_fences(self._parse_body, text)

    def split(self, text: str) -> tuple[str, Program]:
        """The whole text is read as calls: no free-text content."""
        return "", self.parse(text)

    def _parse_body(self, text: str) -> Program:
        body = text.strip()
        if not body:
            return Program([])
        try:
            data = _loads(body)
        except (ValueError, RecursionError) as whole_error:
            data = self._loads_lines(body, whole_error)
        items = self._items(data)
        check_calls(len(items), "")
        return Program([self._call(item, i) for i, item in enumerate(items)])

    def parse_items(self, items: list[Any]) -> Program:
        """Calls that arrive already structured (OpenAI `tool_calls`), arguments maybe a JSON string."""
        check_calls(len(items), "")
        return Program([self._call(item, i) for i, item in enumerate(items)])

    def calls(self, values: list[Any]) -> Program:
        """The calls in decoded JSON values (each a call, a list of calls, or {"tool_calls": …})."""
        items: list[Any] = []
        for value in values:
            items.extend(self._items(value))
            check_calls(len(items), "")
        return Program([self._call(item, i) for i, item in enumerate(items)])

    @staticmethod
    def _loads_lines(body: str, whole_error: Exception) -> list[Any]:
        """One JSON object per line is a common answer shape; try it before giving up."""
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) < 2:
            raise CallParseError("json", f"not valid JSON: {whole_error}") from None
        check_calls(len(lines), "")
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

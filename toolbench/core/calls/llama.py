"""The `llama-json` call format: Llama 3.1 / 3.2 / 3.3 (and Llama 4) JSON tool calls.

    {"name": "get_weather", "parameters": {"city": "Paris"}}

what the Llama 3.x chat templates write for a custom tool call (`render` writes exactly that, one
call per object, several joined by `; `). Parsing also takes what the models and Meta's reference
code (llama-models) emit around it:

- an optional `<|python_tag|>` (Llama 3.x) or `<|python_start|>`…`<|python_end|>` (Llama 4) wrapper,
  with any free text before it as the content;
- `"arguments"` for `"parameters"`, `{"type": "function", "name": …, "parameters": …}`, a list of calls;
- several calls separated by `; `, newlines, or nothing (`{…}{…}`);
- the function-tag form `<function=get_weather>{"city": "Paris"}</function>`;
- a trailing `<|eom_id|>` / `<|eot_id|>` (or Llama 4's `<|eom|>` / `<|eot|>`).

Without a wrapper, the calls start at the first line that starts with a call-shaped JSON value (the
line rule of `scan`); text without one is content. Errors are `llama-json:<kind>`.
"""

from __future__ import annotations

import json
import re

from toolbench.core.calls.base import (
    FormatContext,
    check_calls,
    check_length,
    kind_prefix,
    namespaced,
    strip_end_tokens,
)
from toolbench.core.calls.json_format import JsonFormat, read_json_value, read_json_values
from toolbench.core.calls.scan import next_segment
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Program

PYTHON_TAG = "<|python_tag|>"
PYTHON_START = "<|python_start|>"
PYTHON_END = "<|python_end|>"
FUNCTION_TAG = "<function="
_FUNCTION = re.compile(r"<function=([^>\s]+)>")
_FUNCTION_END = re.compile(r"\s*</function>")
_BETWEEN = re.compile(r"\s*;?\s*")


def unwrap(text: str) -> tuple[str, str, bool]:
    """(content before the wrapper, the body, whether a wrapper was there) of a Llama answer.
    A tag after the start of a call (`[f(a="<|python_tag|>")]`) is inside it, not a wrapper."""
    text = strip_end_tokens(text)
    starts = [(at, tag) for tag in (PYTHON_START, PYTHON_TAG) if (at := text.find(tag)) >= 0]
    if starts:
        at, tag = min(starts)
        first = next_segment(text, 0)
        if first is None or first.start > at:
            return text[:at], strip_end_tokens(text[at + len(tag) :], (PYTHON_END,)), True
    return "", text, False


class LlamaJsonFormat:
    name = "llama-json"

    def __init__(self, context: FormatContext | None = None):
        self.json = JsonFormat(context)

    def render(self, program: Program) -> str:
        return "; ".join(
            json.dumps({"name": call.name, "parameters": call.arguments}, ensure_ascii=False)
            for call in program
        )

    def parse(self, text: str) -> Program:
        return self.split(text)[1]

    def split(self, text: str) -> tuple[str, Program]:
        prefix = kind_prefix(self.name)
        check_length(text, prefix)
        before, body, wrapped = unwrap(text)
        with namespaced(prefix):
            if wrapped:
                content, program = self.read_body(body, "after the python tag: ")
                return (before + content).strip(), program
            start = body.find(FUNCTION_TAG)
            segment = next_segment(body, 0, ("json",))
            if segment is not None and (start < 0 or segment.start < start):
                start = segment.start
            if start < 0:
                return body.strip(), Program([])
            content, program = self.read_body(body[start:], "")
            return (body[:start] + content).strip(), program

    def read_body(self, body: str, where: str) -> tuple[str, Program]:
        """The calls at the start of `body` (JSON values or function tags) and the text after them."""
        start = len(body) - len(body.lstrip())
        if body.startswith(FUNCTION_TAG, start):
            return self._function_tags(body, start)
        if start < len(body) and body[start] in "[{":
            values, end = read_json_values(body, start)
            program = self.json.calls(values)
            if not len(program):
                raise CallParseError("empty", f"{where}an empty list of calls")
            return body[end:].strip(), program
        shown = body[start : start + 40]
        raise CallParseError(
            "json", f"{where}expected a JSON call, got {shown!r}" if shown else f"{where}no call"
        )

    def _function_tags(self, body: str, pos: int) -> tuple[str, Program]:
        values = []
        while (match := _FUNCTION.match(body, pos)) is not None:
            arguments, end = read_json_value(body, match.end())
            values.append({"name": match.group(1), "arguments": arguments})
            check_calls(len(values), "")
            closing = _FUNCTION_END.match(body, end)
            pos = _BETWEEN.match(body, closing.end() if closing else end).end()
        if not values:
            raise CallParseError("syntax", "a <function=…> tag without a name")
        return body[pos:].strip(), self.json.calls(values)

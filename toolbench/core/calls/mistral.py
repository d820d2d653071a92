"""The `mistral` call format: Mistral's `[TOOL_CALLS]` control token, in both of its forms.

- v3 (Mistral 7B v0.3, Nemo, Small 3.x, ...): `[TOOL_CALLS]` then a JSON list
  `[{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]`
  (the Hugging Face template writes a space after the token; both are read);
- v11+ (Mistral Small 3.2, Magistral, Devstral, ...): `[TOOL_CALLS]name[ARGS]{…}`, repeated for
  parallel calls, with an optional `[CALL_ID]id` between the name and `[ARGS]`.

`render` writes the v3 form exactly as mistral-common's tokenizer does (ids `call00000`,
`call00001`, …: nine alphanumerics, as Mistral requires). Text before the first token, and any
text after the calls other than `</s>`, is content. A `[TOOL_CALLS]` that holds no call is an
error, like every other unreadable call: `mistral:<kind>`.
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
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Program

TOOL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"
CALL_ID = "[CALL_ID]"
_NAMED = re.compile(r"\s*([^\s\[\]{}]+)\s*(?:\[CALL_ID\]\s*([^\s\[\]]*)\s*)?\[ARGS\]")


def call_id(index: int) -> str:
    return f"call{index:05d}"


class MistralFormat:
    name = "mistral"

    def __init__(self, context: FormatContext | None = None):
        self.json = JsonFormat(context)

    def render(self, program: Program) -> str:
        if not len(program):
            return ""
        calls = [{"name": c.name, "arguments": c.arguments, "id": call_id(i)} for i, c in enumerate(program)]
        return TOOL_CALLS + json.dumps(calls, ensure_ascii=False)

    def parse(self, text: str) -> Program:
        return self.split(text)[1]

    def split(self, text: str) -> tuple[str, Program]:
        prefix = kind_prefix(self.name)
        check_length(text, prefix)
        start = text.find(TOOL_CALLS)
        if start < 0:
            return text.strip(), Program([])
        check_calls(text.count(TOOL_CALLS), prefix)
        text = strip_end_tokens(text)
        content = [text[:start]]
        values = []
        number = 0
        with namespaced(prefix):
            while start >= 0:
                number += 1
                pos = start + len(TOOL_CALLS)
                body = len(text) - len(text[pos:].lstrip())
                if body < len(text) and text[body] in "[{":
                    found, end = read_json_values(text, body)
                    if not len(self.json.calls(found)):
                        raise CallParseError("empty", f"[TOOL_CALLS] {number} holds an empty list of calls")
                    values.extend(found)
                else:
                    named = _NAMED.match(text, pos)
                    if named is None:
                        shown = text[pos : pos + 40].strip()
                        raise CallParseError(
                            "syntax",
                            f"[TOOL_CALLS] {number}: expected a JSON list of calls or name[ARGS]{{…}}, got {shown!r}"
                            if shown
                            else f"[TOOL_CALLS] {number} holds no call",
                        )
                    arguments, end = read_json_value(text, named.end())
                    values.append({"name": named.group(1), "arguments": arguments})
                check_calls(len(values), "")
                start = text.find(TOOL_CALLS, end)
                content.append(text[end : len(text) if start < 0 else start])
            return "".join(content).strip(), self.json.calls(values)

"""The `hermes` call format: Hermes / Qwen2.5 / Qwen3 tool calls, one block per call,

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

possibly after some free text (the content). `render` writes what the Qwen2.5 chat template
writes for an assistant turn (blocks joined by newlines). Parsing reads each block's JSON with the
JSON decoder (so a `</tool_call>` inside a string argument is harmless), tolerates an unclosed
final block, and falls back to the lenient json reader for a block that is not plain JSON (a
fenced block, say). Errors are `hermes:<kind>` with the block's number.

Text without any block is content, unless it is itself a JSON call (or list of calls), which the
lenient json reader reads; JSON-looking text that fails to parse is content too (this reader only
judges `<tool_call>` blocks; the `auto` format judges everything).
"""

from __future__ import annotations

import json
from typing import Any

from toolbench.core.calls.base import FormatContext, check_calls, check_length, kind_prefix, namespaced
from toolbench.core.calls.json_format import JsonFormat, read_json_value
from toolbench.foundation.errors import CallParseError
from toolbench.foundation.records import Program

OPEN = "<tool_call>"
CLOSE = "</tool_call>"


class HermesFormat:
    name = "hermes"
    reader = "hermes"  # the error kinds' namespace

    def __init__(self, context: FormatContext | None = None):
        self.json = JsonFormat(context)

    def render(self, program: Program) -> str:
        return "\n".join(f"{OPEN}\n{_call_json(call.name, call.arguments)}\n{CLOSE}" for call in program)

    def parse(self, text: str) -> Program:
        return self.split(text)[1]

    def split(self, text: str) -> tuple[str, Program]:
        """(free-text content, calls) of a model's answer."""
        prefix = kind_prefix(self.reader)
        check_length(text, prefix)
        if OPEN not in text:
            stripped = text.strip()
            if stripped and (stripped[0] in "[{" or stripped.startswith("```")):
                try:
                    return "", self.json.parse(stripped)
                except CallParseError:
                    pass  # JSON-looking prose or a Markdown reply: content, not calls
            return stripped, Program([])
        check_calls(text.count(OPEN), prefix)
        content: list[str] = []
        calls = []
        pos = 0
        number = 0
        while (start := text.find(OPEN, pos)) >= 0:
            content.append(text[pos:start])
            number += 1
            with namespaced(prefix, f"tool call {number}: "):
                block, pos = self._block(text, start + len(OPEN))
                if not len(block):
                    raise CallParseError("empty", "the <tool_call> block holds no call")
            calls.extend(block)
            check_calls(len(calls), prefix)
        content.append(text[pos:])
        return "".join(content).strip(), Program(calls)

    def _block(self, text: str, start: int) -> tuple[Program, int]:
        """The calls of the block whose body starts at `start`, and where the block ends."""
        close = text.find(CLOSE, start)
        try:
            value, end = read_json_value(text, start)
        except CallParseError:
            value, end = None, -1
        if end >= 0:
            after = len(text) - len(text[end:].lstrip())
            if text.startswith(CLOSE, after):
                return self.json.calls([value]), after + len(CLOSE)
            if after == len(text) or text.startswith(OPEN, after):  # an unclosed block
                return self.json.calls([value]), after
        # not one plain JSON value: the lenient reader says what it is (fences, one per line…)
        stop = len(text) if close < 0 else close
        body = text[start:stop]
        if not body.strip():
            return Program([]), (stop if close < 0 else close + len(CLOSE))
        return self.json.parse(body), (stop if close < 0 else close + len(CLOSE))


def _call_json(name: str, arguments: dict[str, Any]) -> str:
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)

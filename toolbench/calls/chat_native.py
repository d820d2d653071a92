"""The `chat-native` call format: tool calls as chat templates write them, one
`<tool_call>{"name": …, "arguments": {…}}</tool_call>` block per call (the Hermes/Qwen convention,
also used by the test fixtures' template), possibly after some free text.

Parsing splits a model's text into its free-text content and its calls; text without any tag
that is itself a JSON call (or list of calls) is read by the lenient json format.
"""

from __future__ import annotations

import json
import re

from toolbench.calls.base import FormatContext
from toolbench.calls.json_format import JsonFormat
from toolbench.errors import CallParseError
from toolbench.records import Program

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)


class ChatNativeFormat:
    name = "chat-native"

    def __init__(self, context: FormatContext | None = None):
        self.json = JsonFormat(context)

    def render(self, program: Program) -> str:
        return "\n".join(
            f"<tool_call>{json.dumps(call.model_dump(), ensure_ascii=False)}</tool_call>" for call in program
        )

    def split(self, text: str) -> tuple[str, Program]:
        """(free-text content, calls) of a model's answer."""
        blocks = _BLOCK.findall(text)
        if not blocks:
            stripped = text.strip()
            if stripped and (stripped[0] in "[{" or stripped.startswith("```")):
                try:
                    return "", self.json.parse(stripped)
                except CallParseError:
                    pass  # JSON-looking prose or a Markdown reply: content, not calls
            return stripped, Program([])
        calls = []
        for i, block in enumerate(blocks):
            try:
                calls.extend(self.json.parse(block))
            except CallParseError as error:
                raise CallParseError(error.kind, f"tool call {i + 1}: {error.message}") from None
        return _BLOCK.sub("", text).strip(), Program(calls)

    def parse(self, text: str) -> Program:
        return self.split(text)[1]

"""The `chat-native` call format: the `hermes` reader under its historical name, rendering one
`<tool_call>{"name": …, "arguments": {…}}</tool_call>` line per call (no newlines inside the tags:
the look of the test fixtures' chat template and of the distillation corpus).
"""

from __future__ import annotations

import json

from toolbench.core.calls.hermes import CLOSE, OPEN, HermesFormat
from toolbench.foundation.records import Program


class ChatNativeFormat(HermesFormat):
    name = "chat-native"

    def render(self, program: Program) -> str:
        return "\n".join(
            f"{OPEN}{json.dumps(call.model_dump(), ensure_ascii=False)}{CLOSE}" for call in program
        )

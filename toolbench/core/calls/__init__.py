"""Call formats: one Program, several surface forms, each with `render`, `parse` and `split`.

`FORMATS` names them; `get_format(name, context)` builds one bound to the functions on offer.

- `auto` (the default for model answers): detects the family per answer (see `calls.auto`);
- `json`: OpenAI-style `[{"name": …, "arguments": {…}}]`;
- `python`: ToolBench lines `API.set_location("Oakland, CA")`;
- `hermes`: Hermes/Qwen `<tool_call>\\n{…}\\n</tool_call>` blocks (`chat-native`: the same reader,
  rendering `<tool_call>{…}</tool_call>` lines, its historical name);
- `llama-json`: Llama 3.x `{"name": …, "parameters": {…}}` (with `<|python_tag|>` etc.);
- `pythonic`: `[get_weather(city="Paris"), …]` (Llama 3.2/4 pythonic, BFCL);
- `mistral`: `[TOOL_CALLS][{…}]` and `[TOOL_CALLS]name[ARGS]{…}`.

Caps on one answer's work (MAX_ANSWER_CHARS, MAX_CALLS, MAX_NESTING, MAX_CODE_SYMBOLS) and the
error-kind convention are described in `calls.base`.
"""

from __future__ import annotations

from toolbench.core.calls.auto import AutoFormat
from toolbench.core.calls.base import (
    MAX_ANSWER_CHARS,
    MAX_CALLS,
    MAX_CODE_SYMBOLS,
    MAX_NESTING,
    CallFormat,
    FormatContext,
    ValueConstructor,
    strip_fences,
)
from toolbench.core.calls.chat_native import ChatNativeFormat
from toolbench.core.calls.hermes import HermesFormat
from toolbench.core.calls.json_format import JsonFormat
from toolbench.core.calls.llama import LlamaJsonFormat
from toolbench.core.calls.mistral import MistralFormat
from toolbench.core.calls.python_format import PythonFormat
from toolbench.core.calls.pythonic import PythonicFormat
from toolbench.foundation.errors import CallParseError, UserError

DEFAULT_FORMAT = "auto"

FORMATS: dict[str, type] = {
    "auto": AutoFormat,
    "json": JsonFormat,
    "python": PythonFormat,
    "hermes": HermesFormat,
    "chat-native": ChatNativeFormat,
    "llama-json": LlamaJsonFormat,
    "pythonic": PythonicFormat,
    "mistral": MistralFormat,
}


def get_format(name: str, context: FormatContext | None = None) -> CallFormat:
    try:
        cls = FORMATS[name]
    except KeyError:
        raise UserError(f"unknown call format {name!r}; known: {', '.join(FORMATS)}") from None
    return cls(context)


__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "MAX_ANSWER_CHARS",
    "MAX_CALLS",
    "MAX_CODE_SYMBOLS",
    "MAX_NESTING",
    "AutoFormat",
    "CallFormat",
    "CallParseError",
    "ChatNativeFormat",
    "FormatContext",
    "HermesFormat",
    "JsonFormat",
    "LlamaJsonFormat",
    "MistralFormat",
    "PythonFormat",
    "PythonicFormat",
    "ValueConstructor",
    "get_format",
    "strip_fences",
]

"""Call formats: one Program, several surface forms, each with `render` and `parse`."""

from __future__ import annotations

from toolbench.calls.base import CallFormat, FormatContext, ValueConstructor, strip_fences
from toolbench.calls.chat_native import ChatNativeFormat
from toolbench.calls.json_format import JsonFormat
from toolbench.calls.python_format import PythonFormat
from toolbench.errors import CallParseError, UserError

FORMATS: dict[str, type] = {"json": JsonFormat, "python": PythonFormat, "chat-native": ChatNativeFormat}


def get_format(name: str, context: FormatContext | None = None) -> CallFormat:
    try:
        cls = FORMATS[name]
    except KeyError:
        raise UserError(f"unknown call format {name!r}; known: {', '.join(FORMATS)}") from None
    return cls(context)


__all__ = [
    "FORMATS",
    "CallFormat",
    "CallParseError",
    "ChatNativeFormat",
    "FormatContext",
    "JsonFormat",
    "PythonFormat",
    "ValueConstructor",
    "get_format",
    "strip_fences",
]

"""Prompt pieces shared by exports, the retriever's prompt builder and the evaluator.

The ToolBench completion scaffold lists the API (one doc block per function), optional
demonstrations, then `Task: …` and `Actions:`; the model completes with python-format calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from toolbench.foundation.records import FunctionSpec

DEFAULT_SYSTEM_PROMPT = (
    "You are a function-calling assistant. Answer the user's request only with calls to the "
    "functions provided, with every argument the request states and nothing it does not. "
    "If no provided function fits the request, make no call and say so."
)

_TYPE_NAMES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}


def _type_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    if "format" in schema and schema.get("type") == "string":
        return schema["format"].capitalize()
    kind = schema.get("type")
    if kind == "array" and "items" in schema:
        return f"list[{_type_of(schema['items'])}]"
    if isinstance(kind, list):
        return " | ".join(_TYPE_NAMES.get(k, k) for k in kind)
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    return _TYPE_NAMES.get(kind, "Any")


def api_doc(spec: FunctionSpec, receiver: str = "API") -> str:
    """One function as ToolBench shows it: a comment line, then the call signature."""
    required = set(spec.parameters.get("required", []))
    params = []
    for name, schema in spec.parameters.get("properties", {}).items():
        text = f"{name}: {_type_of(schema)}"
        if name not in required:
            text += f" = {schema.get('default')!r}"
        params.append(text)
    lines = [f"# {spec.description}"] if spec.description else []
    lines.append(f"{receiver}.{spec.name}({', '.join(params)})")
    return "\n".join(lines)


def completion_prompt(
    query: str,
    specs: Iterable[FunctionSpec],
    demos: Sequence[tuple[str, str]] = (),
    system_prompt: str | None = None,
    receiver: str = "API",
) -> str:
    """The ToolBench scaffold. `demos` are (query, python action) pairs."""
    parts = [system_prompt.strip() + "\n"] if system_prompt else []
    parts.append("I have the following set of API:\n\n" + "\n\n".join(api_doc(s, receiver) for s in specs))
    if demos:
        examples = "\n\n".join(f"Task: {q}\nActions:\n{a}" for q, a in demos)
        parts.append("-------------\nI have the following set of examples:\n\n" + examples)
    parts.append(f"-------------\nTask: {query}\nActions:\n")
    return "\n".join(parts)

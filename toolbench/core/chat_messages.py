"""Chat messages with tool calls in the shapes real chat templates accept.

The open families disagree about what a conversation with tool calls may look like, and their
templates raise (or render garbage) on anything else. What every one of Qwen2.5, Llama 3.1/3.2,
Mistral v0.3 and Hermes 2 Pro accepts, and so what this module builds:

- an assistant turn that calls tools has `content: ""` and `tool_calls` whose `arguments` are an
  **object** (templates apply `tojson` to them: a JSON string would be shown double-encoded);
  a turn without calls has no `tool_calls` key at all (Llama and Hermes test for the key);
- every call id is exactly 9 letters or digits (Mistral refuses anything else; OpenAI takes any);
- every tool result carries the call's `tool_call_id` and the function's `name` (Hermes-style
  templates print the name);
- a demonstration ends with a closing assistant reply after its tool results, so user and
  assistant turns alternate (Mistral checks that, counting neither tool turns nor call turns).

One thing cannot be met by all: Llama 3.1's template allows one call per assistant message.
`split_parallel` rewrites a multi-call turn into one call per turn, each followed by its result;
callers use it only where a template refused the parallel form (found by rendering it, see
`toolbench.core.generation.LocalModel.allows_parallel_calls` and the evaluator's retry), never by the
model's name.

On the wire (an OpenAI-compatible HTTP API) `arguments` travel as JSON strings: `wire_messages`
converts; `template_messages` converts back, as vLLM does before it applies a template.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from toolbench.foundation.records import Call, FunctionSpec

DEMO_TOOL_RESULT = '{"status": "ok"}'
DEMO_CLOSING_REPLY = "Done."


def call_id(*parts: object) -> str:
    """A deterministic 9-character alphanumeric id (valid for every template), from `parts`."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:9]


def assistant_calls(calls: Sequence[Call], ids: Sequence[str]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": c.name, "arguments": dict(c.arguments)}}
            for c, i in zip(calls, ids, strict=True)
        ],
    }


def tool_result(call: Call, id_: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": id_, "name": call.name, "content": content}


def demo_turns(query: str, calls: Sequence[Call], key: str) -> list[dict[str, Any]]:
    """One demonstration as complete turns: user → assistant calls → one result per call →
    closing assistant reply. A demo with no call (a relevance demo) is user → assistant text."""
    if not calls:
        return [{"role": "user", "content": query}, {"role": "assistant", "content": DEMO_CLOSING_REPLY}]
    ids = [call_id(key, i) for i in range(len(calls))]
    return [
        {"role": "user", "content": query},
        assistant_calls(calls, ids),
        *(tool_result(c, i, DEMO_TOOL_RESULT) for c, i in zip(calls, ids, strict=True)),
        {"role": "assistant", "content": DEMO_CLOSING_REPLY},
    ]


def has_parallel(messages: Sequence[dict[str, Any]] | None) -> bool:
    return any(len(m.get("tool_calls") or ()) > 1 for m in messages or ())


def split_parallel(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each multi-call assistant turn becomes one single-call turn per call, each followed by its
    own result (matched by `tool_call_id`); results of no call in the turn stay where they were."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        calls = message.get("tool_calls") or []
        if len(calls) <= 1:
            out.append(message)
            i += 1
            continue
        j = i + 1
        results: dict[str, dict[str, Any]] = {}
        while j < len(messages) and messages[j].get("role") == "tool":
            results[messages[j].get("tool_call_id", "")] = messages[j]
            j += 1
        for call in calls:
            out.append({**message, "content": "", "tool_calls": [call]})
            if call.get("id") in results:
                out.append(results.pop(call["id"]))
        out.extend(results.values())
        i = j
    return out


def wire_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for an OpenAI-compatible API: call `arguments` as JSON strings."""
    return [_map_arguments(m, _as_string) for m in messages]


def template_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for a chat template: call `arguments` as objects (a string that is not a JSON
    object is left as it is), and no `tool_calls` key on a turn without calls."""
    out = []
    for message in messages:
        if "tool_calls" in message and not message["tool_calls"]:
            message = {k: v for k, v in message.items() if k != "tool_calls"}
        out.append(_map_arguments(message, _as_object))
    return out


def _as_string(arguments: Any) -> Any:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _as_object(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
    return value if isinstance(value, dict) else arguments


def _map_arguments(message: dict[str, Any], convert: Any) -> dict[str, Any]:
    calls = message.get("tool_calls")
    if not calls:
        return message
    mapped = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and "arguments" in function:
            call = {**call, "function": {**function, "arguments": convert(function["arguments"])}}
        mapped.append(call)
    return {**message, "tool_calls": mapped}


def template_safe_schema(schema: Any) -> Any:
    """A JSON Schema as chat templates can print it: `null` dropped from type unions
    (`["string", "number", "null"]` → `["string", "number"]`; Hermes' type printer recurses
    forever on "null") and `anyOf` of one type plus null collapsed into that type, keeping the
    description and default. Nothing else changes; the executor still validates the full schema
    (an optional argument is left out, not sent as null)."""
    if isinstance(schema, list):
        return [template_safe_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: template_safe_schema(value) for key, value in schema.items()}
    kind = out.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        if rest:
            out["type"] = rest[0] if len(rest) == 1 else rest
    branches = out.get("anyOf")
    if isinstance(branches, list):
        typed = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(typed) == 1 and len(typed) < len(branches) and isinstance(typed[0], dict):
            del out["anyOf"]
            out = {**typed[0], **out}
    return out


def openai_tools(specs: list[FunctionSpec]) -> list[dict[str, Any]]:
    """The `tools` array, with every parameters object carrying the same keys (a uniform shape
    keeps Arrow from inventing nulls when `datasets` loads many tools into one column), and
    schemas every chat template can print (`chat_messages.template_safe_schema`)."""
    tools = []
    for spec in specs:
        parameters = {
            "type": "object",
            "properties": {},
            "required": [],
            **template_safe_schema(spec.parameters),
        }
        tools.append(
            {
                "type": "function",
                "function": {"name": spec.name, "description": spec.description, "parameters": parameters},
            }
        )
    return tools

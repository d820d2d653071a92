"""Which kind of text each generated token is, so acceptance can be broken down by class.

A function-calling answer in chat mode is free text and/or `<tool_call>{"name": …, "arguments":
{…}}</tool_call>` blocks (the chat-native format, toolbench.core.calls.chat_native). A draft tends to be
sure of the syntax and the argument keys and unsure of the values it must copy from the request;
classing tokens shows exactly where it loses. Classes:

- `syntax`: JSON punctuation and whitespace, string quotes, the `<tool_call>` tags, the fixed
  `"name"` / `"arguments"` keys, whitespace between blocks, and special tokens (end of turn);
- `function_name`: the characters of the called function's name;
- `argument_key`: keys inside `arguments` (nested ones too);
- `argument_value`: scalar values inside `arguments` (string contents, numbers, literals; a
  JSON-string `arguments` counts as one value);
- `free_text`: everything outside tool-call blocks.

Characters are classed by a small, forgiving JSON scanner (model output may be malformed or cut
off: it never raises). A token covering characters of several classes takes the most informative
one, in the order function_name > argument_value > argument_key > free_text > syntax: the token
`"Austin` is a value token that happens to carry a quote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

TokenClass = Literal["syntax", "function_name", "argument_key", "argument_value", "free_text"]
CLASSES: tuple[TokenClass, ...] = ("syntax", "function_name", "argument_key", "argument_value", "free_text")
_PRIORITY = {"function_name": 4, "argument_value": 3, "argument_key": 2, "free_text": 1, "syntax": 0}
_BLOCK = re.compile(r"(<tool_call>)(.*?)(</tool_call>|\Z)", re.DOTALL)
_DELIMITERS = set(',:{}[]"') | set(" \t\r\n")


def char_classes(text: str) -> list[TokenClass]:
    """The class of every character of a model's answer."""
    labels: list[TokenClass] = ["free_text"] * len(text)
    blocks = list(_BLOCK.finditer(text))
    gaps, previous = [], 0
    for block in blocks:
        gaps.append((previous, block.start()))
        for group in (1, 3):
            labels[block.start(group) : block.end(group)] = ["syntax"] * (
                block.end(group) - block.start(group)
            )
        _class_call_json(text, block.start(2), block.end(2), labels)
        previous = block.end()
    gaps.append((previous, len(text)))
    if blocks:  # layout whitespace around and between blocks is syntax, prose stays free text
        for start, end in gaps:
            if not text[start:end].strip():
                labels[start:end] = ["syntax"] * (end - start)
    return labels


def _class_call_json(text: str, start: int, end: int, labels: list[TokenClass]) -> None:
    """Class the characters of one call's JSON body in place.

    A stack of containers, each with a mode: `calls` (a list of calls), `call` (a call object:
    its `name` value is the function name, its `arguments` value holds the arguments) and `args`
    (inside arguments: keys are argument keys, scalars argument values).
    """
    stack: list[list[Any]] = []  # [kind "{" or "[", mode, expecting key?, last key]
    i = start

    def value_mode() -> str:
        """What a value at the current place is: the mode of the container it would open."""
        if not stack:
            return "call"
        kind, mode, _, key = stack[-1]
        if mode == "call":
            return {"name": "name", "arguments": "args", "parameters": "args"}.get(key or "", "other")
        if mode == "calls":
            return "call"
        return mode

    while i < end:
        char = text[i]
        if char in " \t\r\n:,{}[]":
            labels[i] = "syntax"
            if char == "{" or char == "[":
                mode = value_mode()
                if char == "[" and mode == "call":
                    mode = "calls"
                stack.append([char, mode, char == "{", None])
            elif char in "}]" and stack:
                stack.pop()
            elif char == ":" and stack:
                stack[-1][2] = False
            elif char == "," and stack and stack[-1][0] == "{":
                stack[-1][2] = True
            i += 1
            continue
        is_key = bool(stack) and stack[-1][0] == "{" and stack[-1][2]
        if char == '"':
            close = i + 1
            while close < end and text[close] != '"':
                close += 2 if text[close] == "\\" else 1
            close = min(close, end)
            content = text[i + 1 : close]
            labels[i] = "syntax"
            if close < end:
                labels[close] = "syntax"
            labels[i + 1 : close] = [_scalar_class(is_key, stack, value_mode())] * (close - i - 1)
            if is_key:
                stack[-1][3] = content
            i = close + 1
            continue
        stop = i
        while stop < end and text[stop] not in _DELIMITERS:
            stop += 1
        labels[i:stop] = [_scalar_class(is_key, stack, value_mode())] * (stop - i)
        i = stop


def _scalar_class(is_key: bool, stack: list[list[Any]], mode: str) -> TokenClass:
    if is_key:
        return "argument_key" if stack[-1][1] == "args" else "syntax"
    if mode == "name":
        return "function_name"
    if mode == "args":
        return "argument_value"
    return "syntax"


def token_spans(tokenizer: Any, tokens: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """(decoded text, (start, end) character span of each token), special tokens decoding to an
    empty span. Uses the tokenizer's offsets when re-encoding the text gives the same ids (the
    usual case), else incremental decoding (a token that ends inside a multi-byte character gets an
    empty span; the next one covers the character)."""
    special = set(tokenizer.all_special_ids)
    kept = [t for t in tokens if t not in special]
    text = tokenizer.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    spans = _offset_spans(tokenizer, text, kept)
    if spans is None:
        spans, done = [], 0
        for i in range(len(kept)):
            prefix = tokenizer.decode(
                kept[: i + 1], skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            agreed = 0
            limit = min(len(prefix), len(text))
            while agreed < limit and prefix[agreed] == text[agreed]:
                agreed += 1
            end = max(done, agreed)
            spans.append((done, end))
            done = end
    it = iter(spans)
    full = [(0, 0) if t in special else next(it) for t in tokens]
    return text, full


def _offset_spans(tokenizer: Any, text: str, tokens: list[int]) -> list[tuple[int, int]] | None:
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, ValueError, TypeError):
        return None  # slow tokenizers have no offsets
    if list(encoded["input_ids"]) != list(tokens):
        return None
    return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]


def token_classes(tokenizer: Any, tokens: Sequence[int]) -> list[TokenClass]:
    """The class of each generated token (see the module doc)."""
    special = set(tokenizer.all_special_ids)
    text, spans = token_spans(tokenizer, tokens)
    chars = char_classes(text)
    classes: list[TokenClass] = []
    for token, (start, end) in zip(tokens, spans, strict=True):
        if token in special:
            classes.append("syntax")
            continue
        covered = chars[start:end] or chars[end : end + 1] or chars[-1:] or ["free_text"]
        classes.append(max(covered, key=_PRIORITY.__getitem__))
    return classes
